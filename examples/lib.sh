# Shared set-up for the example scripts. Each example runs in a fresh
# project directory (its own runtime.hcl, workspace and skills) so examples
# never touch each other or your files.
#
#   BACKEND=opensandbox examples/01-simple-api/run.sh   # any built backend
#   OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=... \
#     MCPRUNTIME_MODEL=gpt-4o-mini examples/03-skill-evolution/run.sh
#
# Without OPENAI_BASE_URL the examples start bin/scripted-llm, a local
# OpenAI-compatible server answering from the example's replies.json, so they
# run offline and their output is checked.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$(cd "$(dirname "$0")" && pwd) # the running example's folder
M="${MCPRUNTIME_BIN:-$ROOT/bin/mcpruntime}"
[ -x "$M" ] || { echo "build first: make build" >&2; exit 1; }
PROJECT=$(mktemp -d "${TMPDIR:-/tmp}/mcpruntime-example-XXXXXX")
cat > "$PROJECT/runtime.hcl" <<HCL
runtime {
  backend   = "${BACKEND:-wasm}"
  workspace = "./workspace"
}
llm {
  base_url = env("OPENAI_BASE_URL")
  api_key  = env("OPENAI_API_KEY")
}
skills {
  dir = "./skills"
}
HCL
cd "$PROJECT"
SCRIPTED=0
LLM_PID=""
SERVE_PID=""
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
  "$M" daemon stop >/dev/null 2>&1 || true
  [ -n "$LLM_PID" ] && kill "$LLM_PID" 2>/dev/null && wait "$LLM_PID" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$PROJECT"
}
trap cleanup EXIT

# start_llm REPLIES.json: use the real endpoint if configured, else the
# scripted one.
start_llm() {
  if [ -n "${OPENAI_BASE_URL:-}" ]; then
    echo "# model: ${MCPRUNTIME_MODEL:-gpt-4o-mini} at $OPENAI_BASE_URL"
    return
  fi
  SCRIPTED=1
  "$ROOT/bin/scripted-llm" -script "$1" -record "$PROJECT/requests.json" >"$PROJECT/llm.out" 2>&1 &
  LLM_PID=$!
  local line=""
  for _ in $(seq 200); do
    line=$(head -n 1 "$PROJECT/llm.out" 2>/dev/null || true)
    case "$line" in base_url=*) break ;; esac
    kill -0 "$LLM_PID" 2>/dev/null || { cat "$PROJECT/llm.out" >&2; exit 1; }
    sleep 0.05
  done
  export OPENAI_BASE_URL=${line#base_url=}
  echo "# model: scripted replies from $(basename "$(dirname "$1")")/$(basename "$1") at $OPENAI_BASE_URL"
}

# start_serve: run `mcpruntime serve` on a free loopback port and set API to
# its address once it answers.
start_serve() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  API="http://127.0.0.1:$port"
  "$M" serve --listen "127.0.0.1:$port" >"$PROJECT/serve.log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 300); do
    curl -fsS "$API/v1/health" >/dev/null 2>&1 && { echo "# serving at $API"; return; }
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$PROJECT/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "serve did not answer at $API" >&2; cat "$PROJECT/serve.log" >&2; exit 1
}

# expect WANT GOT: fail the example when the output lacks WANT.
expect() {
  case "$2" in
    *"$1"*) ;;
    *) echo "example: expected output containing '$1', got: $2" >&2; exit 1 ;;
  esac
}

# expect_answer WANT GOT: like expect, but only with the scripted model (a
# real model words its answers its own way).
expect_answer() {
  if [ "$SCRIPTED" = 1 ]; then expect "$1" "$2"; fi
}

say() { printf '\n$ %s\n' "$*"; }
