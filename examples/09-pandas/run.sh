#!/usr/bin/env bash
# Data analysis: a CSV in the workspace, read with pandas in the sandbox, and
# a model asked to summarise it.
#
# pandas needs a backend that has it: opensandbox (its image has numpy and
# pandas by default). The one config change from the default runtime.hcl:
#
#   runtime { backend = "opensandbox" }
#
# The wasm backend has no numpy or pandas yet (plugins/wasm/python/README.md
# says why); it has the stdlib's csv, sqlite3 and statistics.
. "$(dirname "$0")/../lib.sh"

case "${BACKEND:-wasm}" in
  opensandbox) ;;
  *)
    echo "# 09-pandas: the ${BACKEND:-wasm} backend has no pandas; run it with"
    echo "#   BACKEND=opensandbox $0"
    echo "# (or set backend = \"opensandbox\" in runtime.hcl)"
    exit 0 ;;
esac

mkdir -p workspace
cat > workspace/sales.csv <<CSV
region,units,price
north,12,3.50
south,7,4.25
north,20,3.10
east,5,9.99
south,14,4.00
east,9,8.75
CSV

code='import pandas as pd
df = pd.read_csv("sales.csv")
print(df.describe())
print(df.groupby("region")["units"].sum().to_dict())'
say mcpruntime exec -c "$code"
out=$("$M" exec -c "$code"); echo "$out"
expect 'count' "$out"
expect '11.166667' "$out"      # mean of units
expect "{'east': 14, 'north': 32, 'south': 21}" "$out"

start_llm "$HERE/replies.json"
say mcpruntime run "Which region sold the most units in sales.csv?"
out=$("$M" run "Which region sold the most units in sales.csv? Use pandas."); echo "$out"
expect_answer north "$out"
