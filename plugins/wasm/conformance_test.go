package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/artefacts"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

// buildPlugin builds the plugin binary and installs the Python artefacts
// beside it the way `make build` does (as a link), so discovery is tested
// too: no path is configured.
func buildPlugin(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcpruntime-plugin-wasm")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	if err := os.Symlink(testenv.PythonDir(t), filepath.Join(dir, artefacts.DirName)); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestConformance runs the sdk's conformance suite against the built binary.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, buildPlugin(t), sandboxtest.WithStateDir(testenv.StateDir(t)))
}
