#!/usr/bin/env bash
# Asynchronous agent runs over HTTP: start one, poll it to its answer; start
# another and cancel it while its code runs.
. "$(dirname "$0")/../lib.sh"
start_llm "$HERE/replies.json"
start_serve

field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
# wait_status ID WANT...: poll GET /v1/runs/ID until its status is one of WANT.
wait_status() {
  local id=$1 st=""; shift
  for _ in $(seq 600); do
    st=$(curl -fsS "$API/v1/runs/$id" | field status)
    for w in "$@"; do [ "$st" = "$w" ] && { echo "$st"; return; }; done
    sleep 0.1
  done
  echo "example: run $id is still $st" >&2; exit 1
}

say curl -X POST "$API/v1/runs" -d '{"task": "How many primes are below 1000?"}'
run=$(curl -fsS -X POST "$API/v1/runs" -H 'Content-Type: application/json' -d '{"task": "How many primes are below 1000?"}')
echo "$run"
id=$(echo "$run" | field id)
say curl "$API/v1/runs/$id"   "# polled until done"
st=$(wait_status "$id" done failed)
out=$(curl -fsS "$API/v1/runs/$id"); echo "$out"
expect '"status":"done"' "$out"
expect_answer '168 primes' "$out"

say curl -X POST "$API/v1/runs" -d '{"task": "Run something long"}'
id=$(curl -fsS -X POST "$API/v1/runs" -H 'Content-Type: application/json' -d '{"task": "Run something long"}' | field id)
echo "run $id started"
# Cancel once the long step is running (it leaves a file in the workspace;
# microvm mirrors the workspace back only when a step ends).
for _ in $(seq 900); do
  [ -e "$PROJECT/workspace/long-step-started" ] && break
  sleep 0.1
done
[ -e "$PROJECT/workspace/long-step-started" ] || { echo "example: the long step did not start" >&2; exit 1; }
say curl -X DELETE "$API/v1/runs/$id"
curl -fsS -X DELETE "$API/v1/runs/$id"; echo
start=$(date +%s%N)
st=$(wait_status "$id" cancelled)
ms=$((($(date +%s%N) - start) / 1000000))
out=$(curl -fsS "$API/v1/runs/$id"); echo "$out" | head -c 600; echo
expect '"status":"cancelled"' "$out"
# The cell would sleep for a minute: cancelling stops it at once.
[ "$ms" -lt 10000 ] || { echo "example: the run took $ms ms to stop after DELETE" >&2; exit 1; }
echo "# cancelled ${ms} ms after DELETE"
