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
	dir, err := os.MkdirTemp("", "wasm-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	buildDirs = append(buildDirs, dir)
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

// buildDirs are removed by TestMain: the binary outlives single tests.
var buildDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range buildDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// TestConformance runs the sdk's conformance suite against the built binary.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, pluginPath(t), sandboxtest.WithStateDir(testenv.StateDir(t)))
}

// TestConformancePooled runs the suite again with a warm pool, the
// configuration users get from the default runtime.hcl.
func TestConformancePooled(t *testing.T) {
	sandboxtest.Run(t, pluginPath(t), sandboxtest.WithStateDir(testenv.StateDir(t)), sandboxtest.WithPoolSize(2))
}
