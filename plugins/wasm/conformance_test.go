package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/artefacts"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
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
	// The in-process backend starts its workers from this test binary.
	if _, ok := os.LookupEnv(worker.EnvVar); ok {
		os.Exit(worker.Main())
	}
	code := m.Run()
	for _, d := range buildDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// TestConformance runs the sdk's conformance suite against the built binary.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, pluginPath(t), sandboxtest.WithStateDir(testenv.StateDir(t)), sandboxtest.WithConfig(testenv.ConfigJSON(t, nil)))
}

// TestConformancePooled runs the suite again with a warm pool, the
// configuration users get from the default runtime.hcl.
func TestConformancePooled(t *testing.T) {
	sandboxtest.Run(t, pluginPath(t), sandboxtest.WithStateDir(testenv.StateDir(t)), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(testenv.ConfigJSON(t, nil)))
}

// TestConformanceInProcess runs the suite against the backend served in
// the test binary (its workers are this binary too, see TestMain), so that
// the race detector sees the plugin's code when the test runs with -race.
func TestConformanceInProcess(t *testing.T) {
	cfg := testenv.ConfigJSON(t, map[string]string{"python_dir": testenv.PythonDir(t)})
	sandboxtest.RunBackend(t, backend.New(nil), sandboxtest.WithStateDir(testenv.StateDir(t)), sandboxtest.WithConfig(cfg))
}
