#!/usr/bin/env bash
# Live output: `serve` streams an execution as server-sent events while the
# cell runs — each print arrives when it happens, the result comes last.
. "$(dirname "$0")/../lib.sh"
start_serve

code='import time
for i in range(3):
    print(f"tick {i}", flush=True)
    time.sleep(0.5)
"done"'
body=$(python3 -c 'import json, sys; print(json.dumps({"code": sys.argv[1]}))' "$code")

say curl -N -X POST "$API/v1/execute/stream" -d "{\"code\": ...}"
# Each line is stamped with the time it arrived, to show it is live.
start=$(date +%s%N)
out=$(curl -sS -N -X POST "$API/v1/execute/stream" -H 'Content-Type: application/json' -d "$body" |
  while IFS= read -r line; do
    if [ -n "$line" ]; then printf '%6d ms  %s\n' $((($(date +%s%N) - start) / 1000000)) "$line"; fi
  done)
echo "$out"
expect 'event: stdout' "$out"
expect 'tick 2' "$out"
expect 'event: result' "$out"
# The first tick arrives well before the result (the cell sleeps 1.5 s in
# all): the output is streamed, not collected.
first=$(echo "$out" | grep -m1 'tick 0' | awk '{print $1}')
last=$(echo "$out" | grep -m1 'event: result' | awk '{print $1}')
[ $((last - first)) -ge 1000 ] || { echo "example: output was not streamed (tick 0 at $first ms, result at $last ms)" >&2; exit 1; }
echo "# tick 0 arrived $((last - first)) ms before the result"
