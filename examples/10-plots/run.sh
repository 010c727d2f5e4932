#!/usr/bin/env bash
# Rich outputs: plots, tables and images from sandbox code. A cell's plot
# (matplotlib's plt.show(), or a figure left open) and display() become
# image/png outputs; a DataFrame as the last expression becomes HTML. The
# CLI saves them with --outputs DIR, --json carries them as mime bundles,
# the HTTP stream and MCP clients get them too, and the agent shows them to
# the model: as images with llm { vision = true }, else as a line naming
# the saved file.
#
# matplotlib is in the opensandbox and microvm images; on the other
# backends the example displays HTML and PNG bytes with display().
. "$(dirname "$0")/../lib.sh"

PNG_SIG=$(printf '\x89PNG')
check_png() { # check_png FILE: the file is a PNG image
  [ "$(head -c 4 "$1")" = "$PNG_SIG" ] || { echo "example: $1 is not a PNG" >&2; exit 1; }
  echo "# $1: a PNG of $(wc -c <"$1") bytes"
}

case "${BACKEND:-wasm}" in
  opensandbox|microvm) plots=1 ;;
  *) plots=0 ;;
esac

if [ "$plots" = 1 ]; then
  code='import matplotlib.pyplot as plt
months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
units = [12, 19, 15, 24, 30, 27]
plt.figure(figsize=(6, 3.5))
plt.bar(months, units, color="#4c78a8")
plt.title("Units sold per month")
plt.ylabel("units")
plt.show()
try:
    import pandas as pd  # opensandbox; the microvm image has no pandas
    table = pd.DataFrame({"month": months, "units": units}).head(3)
except ImportError:
    from IPython.display import HTML
    table = HTML("<table>" + "".join(f"<tr><td>{m}</td><td>{u}</td></tr>" for m, u in zip(months, units)) + "</table>")
table'
else
  code='display({"text/html": "<b>six</b> months", "image/png": bytes.fromhex("89504e470d0a1a0a") + bytes(32)}, raw=True)
from IPython.display import HTML
HTML("<table><tr><td>12</td></tr></table>")'
fi
say mcpruntime exec --outputs out -c '...'
out=$("$M" exec --outputs out -c "$code"); echo "$out"
expect "[output: out/output-1.png]" "$out"
check_png out/output-1.png
expect "[output: out/output-2.html]" "$out"
grep -q "<table" out/output-2.html || { echo "example: the table's HTML has no <table>" >&2; exit 1; }

say mcpruntime exec --json -c '...'
json=$("$M" exec --json -c "$code")
echo "$json" | python3 -c 'import json,sys; o=json.load(sys.stdin)["outputs"]; print([sorted(d["data"]) for d in o])'
expect '"image/png":"iVBORw0KGgo' "$json"   # base64 of the PNG signature

# The agent: a vision model gets the plot as an image part; a text model a
# line naming the file it was saved as.
if [ "$plots" = 1 ]; then
  sed -i 's/^llm {$/llm {\n  vision = true/' runtime.hcl
  start_llm "$HERE/replies.json"
  say mcpruntime run "Plot the monthly sales and describe the trend."
  ans=$("$M" run "Plot the monthly sales and describe the trend."); echo "$ans"
  expect_answer "peak of 30 in May" "$ans"
  if [ "$SCRIPTED" = 1 ]; then
    kill "$LLM_PID"; wait "$LLM_PID" 2>/dev/null || true; LLM_PID=""
    python3 -c 'import json, sys
m = json.load(open("requests.json"))[1]["messages"][-1]
sys.exit(not any(u.startswith("data:image/png;base64,iVBORw0KGgo") for u in m.get("images", [])))' ||
      { echo "example: the model's request has no image part" >&2; exit 1; }
    echo "# the model's second request carried the plot as an image part"
  fi
fi
