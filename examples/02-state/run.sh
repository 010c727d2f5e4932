#!/usr/bin/env bash
# State across steps: a persistent session keeps variables and files between
# separate invocations (the workspace's session daemon holds it), and the
# agent loop keeps them between its steps.
. "$(dirname "$0")/../lib.sh"

say mcpruntime exec --session demo -c 'prices = [3.5, 2.25, 10.0]'
"$M" exec --session demo -c 'prices = [3.5, 2.25, 10.0]'
say mcpruntime exec --session demo -c 'prices.append(4.25); print(sum(prices))'
out=$("$M" exec --session demo -c 'prices.append(4.25); print(sum(prices))'); echo "$out"; expect 20.0 "$out"
say mcpruntime exec --session other -c "print('prices' in globals())"
out=$("$M" exec --session other -c "print('prices' in globals())"); echo "$out"; expect False "$out"

start_llm "$HERE/replies.json"
say mcpruntime run "Load the numbers 1..100, then report their mean and standard deviation"
out=$("$M" run --json "Load the numbers 1..100 into a variable, then in a second step report their mean and standard deviation")
echo "$out" | head -c 2000; echo
expect_answer '"success":true' "$out"
expect_answer '50.5' "$out"
