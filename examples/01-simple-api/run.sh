#!/usr/bin/env bash
# Simple API: run code, read JSON results, and let the model solve a task.
. "$(dirname "$0")/../lib.sh"

say mcpruntime exec -c 'print(sum(range(10)))'
out=$("$M" exec -c 'print(sum(range(10)))'); echo "$out"; expect 45 "$out"

say mcpruntime exec --json -c '1/0'
out=$("$M" exec --json -c '1/0' || true); echo "$out"; expect '"exit_code":1' "$out"

start_llm "$HERE/replies.json"
say mcpruntime run "What is 2 to the power of 20?"
out=$("$M" run "What is 2 to the power of 20? Compute it with Python."); echo "$out"
expect_answer 1048576 "$out"
