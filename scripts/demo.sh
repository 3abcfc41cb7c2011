#!/usr/bin/env bash
# A full round trip on a fresh machine (Go is all it needs): build the
# binary, start a test backend and the relay on config.hcl.example, send
# correctly signed Meta, Twilio and Infobip samples, and show what the
# backend received. Everything runs on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT

echo "==> building bin/edgerelay"
go build -buildvcs=auto -o bin/edgerelay ./cmd/edgerelay

echo "==> validating config.hcl.example"
bin/edgerelay validate -config config.hcl.example

echo "==> starting the test backend on 127.0.0.1:9800 (it checks the relay's signature)"
bin/edgerelay receive -addr 127.0.0.1:9800 -secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw >"$work/backend.log" 2>&1 &

echo "==> starting the relay on config.hcl.example (log: $work/relay.log)"
bin/edgerelay run -config config.hcl.example >"$work/relay.log" 2>&1 &
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:9090/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS http://127.0.0.1:9090/readyz

for ch in meta-main twilio infobip; do
  echo
  echo "==> edgerelay simulate -channel $ch"
  bin/edgerelay simulate -config config.hcl.example -channel "$ch"
done

echo
echo "==> a forged Meta callback (wrong signature) is refused and never delivered"
curl -sS -o /dev/stderr -w "HTTP %{http_code}\n" -X POST http://127.0.0.1:8443/hooks/meta/main \
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
curl -fsS http://127.0.0.1:9090/api/v1/queues
n=$(grep -c '"signature":"valid"' "$work/backend.log" || true)
echo
echo "round trip: $n deliveries received with a valid relay signature (expected 4: meta goes to crm and sales-bot)"
[ "$n" -ge 4 ]
