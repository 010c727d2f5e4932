package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// TestConformance builds this plugin and runs the sdk's conformance suite
// against the binary, exactly as a third party would.
func TestConformance(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mcpruntime-plugin-hostpython")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	sandboxtest.Run(t, bin)
}

// TestConformanceInProcess runs the suite against the backend served in
// the test binary, so that the race detector sees the plugin's code.
func TestConformanceInProcess(t *testing.T) {
	sandboxtest.RunBackend(t, &backend{})
}
