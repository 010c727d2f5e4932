#!/usr/bin/env bash
# Recursive Language Models: a multi-megabyte input is loaded into the
# session as the variable `context` (run --context); the model sees only its
# size and a preview, searches it with code, and hands slices to ask_llm —
# to a sub-agent with its own sandbox when recursive=True.
. "$(dirname "$0")/../lib.sh"
start_llm "$HERE/replies.json"

# A 4 MB server log with one incident in the middle.
python3 - > "$PROJECT/server.log" <<'PY'
import random
random.seed(7)
lines = []
for i in range(60000):
    lines.append(f"2026-11-30T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} INFO request {i} served in {random.randint(1, 90)} ms")
lines[31337] = "2026-11-30T08:42:17 ERROR payment gateway timed out for order 9182; retried 3 times"
print("\n".join(lines))
PY
size=$(wc -c < "$PROJECT/server.log")
echo "# input: server.log, $size bytes"

say mcpruntime run --context server.log "Which order failed, and why?"
out=$("$M" run --context "$PROJECT/server.log" "Which order failed, and why?"); echo "$out"
expect_answer "Order 9182" "$out"
if [ "$SCRIPTED" = 1 ]; then
  # The model never received the log: only its size and a preview.
  kill "$LLM_PID"; wait "$LLM_PID" 2>/dev/null || true; LLM_PID=""
  reqs=$(cat "$PROJECT/requests.json")
  case "$reqs" in *"order 9182; retried"*) ;; *) echo "example: the slice given to ask_llm is missing" >&2; exit 1 ;; esac
  case "$reqs" in *"request 45000 served"*) echo "example: the input reached the model" >&2; exit 1 ;; esac
  echo "# the model's requests: $(wc -c < "$PROJECT/requests.json") bytes in all, for a $size-byte input"
fi
