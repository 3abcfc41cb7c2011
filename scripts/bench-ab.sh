#!/usr/bin/env bash
# Compares relay builds the way the README's "alternated single-round pairs"
# were measured: for each of PAIRS passes, one single-round run of the bench
# mode per binary, in turn, so that a drift of the machine's speed lands on
# every binary alike. Prints each run's relay line and its ratio line, tagged
# with the binary's name, then the median events/s and p99 of each binary.
#
#   scripts/bench-ab.sh MODE PAIRS "BENCH ARGS" BIN...
#   scripts/bench-ab.sh ingest 3 "-duration 8s -info-round=false" /tmp/a/edgerelay /tmp/b/edgerelay
#
# MODE is ingest or saturate. A binary may be a wrapper script that sets
# the environment (GOMAXPROCS=3, say) and execs the relay.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 4 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
mode=$1 pairs=$2 args=$3
shift 3
case $mode in
  ingest | saturate) ;;
  *) echo "bench-ab: mode $mode: want ingest or saturate" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench=$work/bench out=$work/runs
go build -o "$bench" ./bench

for _ in $(seq 1 "$pairs"); do
  for bin in "$@"; do
    # shellcheck disable=SC2086 # the bench arguments are meant to split
    "$bench" -bin "$bin" -mode "$mode" -rounds 1 $args 2>&1 |
      grep -E '^round 1 relay|^ratio relay/(baseline|nginx) \(per' |
      sed "s|^|$bin |" | tee -a "$out"
  done
done

median() { sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
echo "== medians over $pairs runs each"
for bin in "$@"; do
  lines=$(grep -F "$bin round 1 relay" "$out" || true)
  rate=$(sed -E 's/.* ([0-9]+) events\/s.*/\1/' <<<"$lines" | median)
  p99=$(sed -E 's/.*p99 ([0-9.]+)ms.*/\1/' <<<"$lines" | median)
  echo "$bin: $rate events/s, p99 $p99 ms"
done
