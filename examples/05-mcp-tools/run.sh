#!/usr/bin/env bash
# MCP tools from sandbox code: a real MCP server (the reference knowledge-
# graph server, installed by `make deps` into deps/npm) becomes an
# importable, typed Python package; calls run in parallel with asyncio.
. "$(dirname "$0")/../lib.sh"
SERVER="$ROOT/deps/npm/node_modules/.bin/mcp-server-memory"
[ -x "$SERVER" ] || { echo "install the MCP servers first: make deps" >&2; exit 1; }
cat >> runtime.hcl <<HCL
mcp_server "memory" {
  command = ["$SERVER"]
  env     = { MEMORY_FILE_PATH = "$PROJECT/memory.jsonl" }
}
HCL

say mcpruntime exec -c 'help(create_entities)'
out=$("$M" exec -c 'from tools.memory import create_entities
help(create_entities)'); echo "$out"
# The stub is typed from the tool's whole schema: a list of Entity dicts.
expect 'entities: list[tools.memory.Entity]' "$out"

code='from tools.memory import create_entities, search_nodes
import asyncio
create_entities(entities=[
    {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]},
    {"name": "Grace", "entityType": "person", "observations": ["built the first compiler"]},
])
async def main():
    # three tool calls at once, on every backend (wasm has no threads)
    return await asyncio.gather(*(search_nodes.call_async(query=q) for q in ["Ada", "Grace", "compiler"]))
for hits in asyncio.run(main()):
    print(sorted(e["name"] for e in hits["entities"]))'
say mcpruntime exec -c "$code"
out=$("$M" exec -c "$code"); echo "$out"
expect "['Ada']" "$out"
expect "['Grace']" "$out"

say mcpruntime exec -c 'a tool error'
out=$("$M" exec -c 'import mcpruntime
from tools.memory import open_nodes
try:
    mcpruntime.call_tool("memory", "no_such_tool", {})
except mcpruntime.ToolError as e:
    print("ToolError", e.server, e.tool, e.code)'); echo "$out"
expect 'ToolError memory no_such_tool unknown_tool' "$out"

start_llm "$HERE/replies.json"
say mcpruntime run "Who built the first compiler? Use the knowledge graph."
out=$("$M" run "Who built the first compiler? Use the knowledge graph."); echo "$out"
expect_answer Grace "$out"
