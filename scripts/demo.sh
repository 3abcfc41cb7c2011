#!/usr/bin/env bash
# A full round trip on a fresh machine (Go is all it needs): build the
# binary, start a test backend and the relay on config.hcl.example, send
# correctly signed Meta, Twilio and Infobip samples, show what the backend
# received, then turn a delivery into a dead letter and replay it.
# Everything runs on 127.0.0.1 and stops at the end; nothing is left behind
# but the example's ./data queue.
set -euo pipefail
cd "$(dirname "$0")/.."

config=config.hcl.example
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
admin=127.0.0.1:9090

# The ports the example listens on (its addresses) and the test backend's.
ports=$(sed -n 's/^ *address *= *"127\.0\.0\.1:\([0-9][0-9]*\)".*/\1/p' "$config" | sort -u)
ports="$ports 9800"
busy=""
for p in $ports; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    busy="$busy 127.0.0.1:$p"
  fi
done
if [ -n "$busy" ]; then
  echo "demo: refusing to start: already in use:$busy" >&2
  echo "demo: the demo needs the ports of $config and 9800 for its test backend;" >&2
  echo "demo: is a relay (or an earlier demo) still running? stop it first (e.g. pkill -f 'edgerelay run -config $config')." >&2
  exit 1
fi

work=$(mktemp -d)
backend_pid=""
cleanup() {
  local pids
  pids=$(jobs -p)
  [ -n "$pids" ] && kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_backend() { # status
  bin/edgerelay receive -addr 127.0.0.1:9800 -secret "$secret" -status "$1" >>"$work/backend.log" 2>&1 &
  backend_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/backend.log" 2>/dev/null && [ "$(grep -c 'listening on' "$work/backend.log")" -ge "$2" ] && return 0
    kill -0 "$backend_pid" 2>/dev/null || { cat "$work/backend.log" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: the test backend did not start" >&2
  return 1
}

echo "==> building bin/edgerelay"
go build -buildvcs=auto -o bin/edgerelay ./cmd/edgerelay
bin/edgerelay version | sed -n 1p   # sed reads it all: no SIGPIPE under pipefail

echo "==> validating $config"
bin/edgerelay validate -config "$config"

echo "==> starting the test backend on 127.0.0.1:9800 (it checks the relay's signature)"
start_backend 200 1

echo "==> starting the relay on $config"
bin/edgerelay run -config "$config" >"$work/relay.log" 2>&1 &
relay_pid=$!
ready=""
for _ in $(seq 1 100); do
  if curl -fsS "http://$admin/readyz" >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$relay_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "demo: the relay did not become ready; its log:" >&2
  cat "$work/relay.log" >&2
  exit 1
fi
curl -fsS "http://$admin/readyz"

for ch in meta-main twilio infobip; do
  echo
  echo "==> edgerelay simulate -channel $ch"
  bin/edgerelay simulate -config "$config" -channel "$ch"
done

echo
echo "==> a forged Meta callback (wrong signature) is refused and never delivered"
curl -sS -w "\nHTTP %{http_code}\n" -X POST http://127.0.0.1:8443/hooks/meta/main \
  -H 'Content-Type: application/json' -H 'X-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000' \
  --data '{"object":"whatsapp_business_account","entry":[]}'

for _ in $(seq 1 50); do
  [ "$(grep -c event_id "$work/backend.log" || true)" -ge 4 ] && break
  sleep 0.1
done
echo
echo "==> what the backend received (one line per delivery)"
grep event_id "$work/backend.log" | cut -c1-240
echo
echo "==> queue state from the admin API"
curl -fsS "http://$admin/api/v1/queues"
n=$(grep -c '"signature":"valid"' "$work/backend.log" || true)
echo
echo "round trip: $n deliveries received with a valid relay signature (expected 4: meta goes to crm and sales-bot)"
[ "$n" -ge 4 ]

echo
echo "==> dead letters: the backend now answers 400 (edgerelay receive -status 400), a permanent failure"
kill "$backend_pid"; wait "$backend_pid" 2>/dev/null || true
start_backend 400 2
bin/edgerelay simulate -config "$config" -channel twilio >/dev/null
for _ in $(seq 1 100); do
  bin/edgerelay dlq list -admin "$admin" | grep twilio >/dev/null && break
  sleep 0.1
done
echo "\$ edgerelay dlq list -admin $admin"
bin/edgerelay dlq list -admin "$admin"
id=$(bin/edgerelay dlq list -admin "$admin" -channel twilio -json | sed -n 's/.*"event_id": "\([^"]*\)".*/\1/p' | tail -1)
[ -n "$id" ] || { echo "demo: no dead letter appeared" >&2; exit 1; }
echo
echo "\$ edgerelay dlq show -admin $admin $id"
bin/edgerelay dlq show -admin "$admin" "$id"

echo
echo "==> the backend is fixed (answers 200 again): replay the dead letter"
kill "$backend_pid"; wait "$backend_pid" 2>/dev/null || true
before=$(grep -c '"signature":"valid"' "$work/backend.log" || true)
start_backend 200 3
echo "\$ edgerelay dlq replay -admin $admin $id"
bin/edgerelay dlq replay -admin "$admin" "$id"
for _ in $(seq 1 100); do
  [ "$(grep -c '"signature":"valid"' "$work/backend.log" || true)" -gt "$before" ] && break
  sleep 0.1
done
after=$(grep -c '"signature":"valid"' "$work/backend.log" || true)
echo "replayed: $((after - before)) delivery received after the replay (expected 1)"
[ "$after" -gt "$before" ]
