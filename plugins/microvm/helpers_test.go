package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// pluginBinary builds the plugin and the guest agent side by side, as
// `make build` does, once per test process.
func pluginBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "microvm-test-bin-")
		if buildErr != nil {
			return
		}
		steps := [][]string{
			{"go", "build", "-trimpath", "-o", filepath.Join(buildDir, "mcpruntime-microvm-agent"), "./cmd/guest-agent"},
			{"go", "build", "-trimpath", "-o", filepath.Join(buildDir, "mcpruntime-plugin-microvm"), "."},
		}
		for i, s := range steps {
			cmd := exec.Command(s[0], s[1:]...)
			cmd.Env = os.Environ()
			if i == 0 {
				cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%v: %v\n%s", s, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return filepath.Join(buildDir, "mcpruntime-plugin-microvm")
}

// needQEMU skips when the host cannot run the backend at all.
func needQEMU(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (make deps)")
	}
	if os.Geteuid() != 0 {
		if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), ".cache/mcpruntime/microvm/current.json")); err != nil {
			t.Skip("building the guest image needs root once (make image)")
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
