#!/usr/bin/env bash
# Replay and time travel: every step is logged with a workspace snapshot and
# the session's variables; resume a new session from an earlier step.
. "$(dirname "$0")/../lib.sh"

say mcpruntime exec --session story -c "count = 1; open('notes.txt', 'w').write('draft')"
"$M" exec --session story -c "count = 1; _ = open('notes.txt', 'w').write('draft')"
say mcpruntime exec --session story -c "count += 1; open('notes.txt', 'w').write('final')"
"$M" exec --session story -c "count += 1; _ = open('notes.txt', 'w').write('final')"

say mcpruntime replay list
"$M" replay list
say mcpruntime replay show story --step 1
"$M" replay show story --step 1

say mcpruntime replay resume story --step 1
new=$("$M" replay resume story --step 1)
echo "$new"
say mcpruntime exec --session "$new" -c "print(count, open('notes.txt').read())"
out=$("$M" exec --session "$new" -c "print(count, open('notes.txt').read())"); echo "$out"
expect "1 draft" "$out"
