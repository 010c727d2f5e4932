package main

import (
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// TestSmoke runs code in a pooled and in a cold-placed session and keeps
// state between executions.
func TestSmoke(t *testing.T) {
	requireCluster(t)
	for _, pool := range []int{0, 1} {
		h := launch(t, pool, "")
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "print(6*7)", "42\n")
		h.Expect(t, id, "x = 41", "")
		h.Expect(t, id, "print(x + 1)", "42\n")
		// The test cluster's chroot links the other backends' paths.
		h.Expect(t, id, "_ = open('/workspace/smoke.txt', 'w').write('s')\nimport os\nprint(os.path.realpath('/workspace'), os.path.realpath('/mcpruntime/lib'))", "/local/workspace /local/lib\n")
	}
}
