package main

import (
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// TestSessionsFromOneImageShareNoState: sessions whose kernels resume the
// same pre-initialized image (pooled and not) draw different random
// numbers, keep their globals and modules' state to themselves and see
// only their own workspace.
func TestSessionsFromOneImageShareNoState(t *testing.T) {
	p := launch(t, 2)
	const probe = "import os, random, json\n" +
		"print(random.random(), random.getrandbits(64), 'mine' in globals(), getattr(json, 'touched', None), sorted(os.listdir('.')))\n" +
		"mine = 1\njson.touched = True\nopen('own', 'w').write('x')\n"
	var firsts []string
	for i := 0; i < 3; i++ {
		id := newSession(t, p, sdk.SessionSpec{})
		o := execCode(t, p, id, probe)
		if !o.res.OK() {
			t.Fatalf("session %d: %+v %s", i, o.res, o.stderr)
		}
		f := strings.Fields(o.stdout)
		if len(f) < 5 || f[2] != "False" || f[3] != "None" || f[4] != "[]" {
			t.Fatalf("session %d starts with another's state: %q", i, o.stdout)
		}
		for _, prev := range firsts {
			if prev == f[0]+f[1] {
				t.Fatalf("session %d drew the same random numbers as an earlier one: %q", i, o.stdout)
			}
		}
		firsts = append(firsts, f[0]+f[1])
		expectOK(t, p, id, "print(mine, json.touched, sorted(os.listdir('.')))", "1 True ['own']\n")
	}
}
