package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow/swaptest"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// TestWorkspaceSymlinkSwap goes through a real microVM session: another
// session sharing the workspace keeps swapping a file for a symlink to a
// root-only host file (the race itself is run hundreds of times against the
// sync code in internal/backend); code in the VM reads the file after each
// sync and never sees the host file. Writing back below a symlinked
// directory is refused and reported, and nothing lands outside.
func TestWorkspaceSymlinkSwap(t *testing.T) {
	needQEMU(t)
	const iterations = 20
	h := launch(t, nil, "")
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("HOST SECRET: root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.ws, "f"), []byte("workspace content"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := h.session(sdk.Limits{})

	stop := swaptest.Exchange(t, h.ws, "f", secret)
	defer stop()
	read := "import os\nfor n in ('f', 'f.alt'):\n    p = '/workspace/' + n\n    if os.path.isfile(p):\n        print(n, open(p).read())\n"
	var delivered int
	for i := 0; i < iterations; i++ {
		res, out := h.exec(id, read)
		if !res.OK() {
			t.Fatalf("iteration %d: %+v", i, res)
		}
		if strings.Contains(out, "SECRET") {
			t.Fatalf("iteration %d: code in the VM read a host file through a workspace symlink: %q", i, out)
		}
		delivered += strings.Count(out, "workspace content")
	}
	stop()
	if delivered == 0 {
		t.Fatal("the workspace file never reached the VM: the test proves nothing")
	}

	// The other direction: a symlinked directory in the host workspace.
	if err := os.Symlink(outside, filepath.Join(h.ws, "out")); err != nil {
		t.Fatal(err)
	}
	res, _ := h.exec(id, "import os\nos.makedirs('/workspace/out', exist_ok=True)\nopen('/workspace/out/planted', 'w').write('x')\nopen('/workspace/fine', 'w').write('y')")
	if res.OK() || !strings.Contains(res.Message, "out/planted") || !strings.Contains(res.Message, "symlink") {
		t.Fatalf("write below a symlinked directory: %+v, want it reported as not copied back", res)
	}
	if _, err := os.Lstat(filepath.Join(outside, "planted")); err == nil {
		t.Fatal("the VM's file was written outside the workspace")
	}
	if b, err := os.ReadFile(filepath.Join(h.ws, "fine")); err != nil || string(b) != "y" {
		t.Fatalf("the other file was not copied back: %q %v", b, err)
	}
}
