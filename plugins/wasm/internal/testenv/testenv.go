// Package testenv locates the CPython-for-WASI build for the plugin's tests.
package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/artefacts"
)

// PythonDir returns the artefacts to test with: $MCPRUNTIME_WASM_PYTHON, else
// the Makefile's output (plugins/wasm/dist), else the build script's
// default output (plugins/wasm/python/dist). It fails the test when none
// exists, naming the command that builds one.
func PythonDir(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	candidates := []string{os.Getenv("MCPRUNTIME_WASM_PYTHON"), filepath.Join(root, "dist"), filepath.Join(root, "python", "dist")}
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if p, err := artefacts.Check(dir); err == nil {
			return p.Dir
		}
	}
	tb.Fatalf("no CPython-for-WASI build found in %v: run `make -C plugins/wasm python`", candidates[1:])
	return ""
}

// ModuleRoot is the plugin module's directory.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// StateDir is a state directory shared by the package's tests, so the
// compilation cache is filled once per run.
func StateDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), "mcpruntime-wasm-test-state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Engine is the engine the plugin's tests run against:
// $MCPRUNTIME_WASM_ENGINE ("wasmtime" or "wazero"; "" is the plugin's
// default). The Makefile runs the tests once per engine.
func Engine() string { return os.Getenv("MCPRUNTIME_WASM_ENGINE") }

// ConfigJSON is the plugin config block for the tests' engine, with extra
// attributes.
func ConfigJSON(tb testing.TB, extra map[string]string) string {
	tb.Helper()
	cfg := map[string]string{}
	for k, v := range extra {
		cfg[k] = v
	}
	if e := Engine(); e != "" {
		cfg["engine"] = e
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return string(js)
}
