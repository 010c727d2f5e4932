#!/usr/bin/env bash
# Skill evolution: a working, typed function from one run is saved as a skill
# (skills/<name>.py with a run(...) entry point); the next run's prompt lists
# it and the code imports it.
. "$(dirname "$0")/../lib.sh"
start_llm "$HERE/replies.json"

say mcpruntime run "Convert 100 degrees Celsius to Fahrenheit"
out=$("$M" run "Convert 100 degrees Celsius to Fahrenheit"); echo "$out"; expect_answer 212 "$out"

say mcpruntime skills list
out=$("$M" skills list); echo "$out"; expect_answer "run(celsius: float) -> float" "$out"
say mcpruntime skills show celsius_to_fahrenheit
"$M" skills show celsius_to_fahrenheit

say mcpruntime run "Convert 37 degrees Celsius to Fahrenheit"
out=$("$M" run "Convert 37 degrees Celsius to Fahrenheit"); echo "$out"; expect_answer 98.6 "$out"
