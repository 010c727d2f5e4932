package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/sandbox"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// TestConformance builds the plugin and runs the sdk's conformance suite
// against the binary, as the core would launch it, with a warm pool.
func TestConformance(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	sandboxtest.Run(t, bin, sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(testenv.ConfigJSON()))
}

// TestConformanceInProcess runs the suite against the backend served in
// the test binary, so that the race detector sees the plugin's code (make
// test runs it with -race). The containers' init must be a static binary,
// which a -race test binary is not: OPENSANDBOX_INIT_BINARY, read when the
// package loads, names the static mcpruntime-opensandbox-init (make build
// puts it in bin/plugins).
func TestConformanceInProcess(t *testing.T) {
	testenv.RequireContainerd(t)
	if os.Getenv("OPENSANDBOX_INIT_BINARY") == "" {
		t.Skip("OPENSANDBOX_INIT_BINARY (a static mcpruntime-opensandbox-init) is not set")
	}
	sandboxtest.RunBackend(t, sandbox.New(), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(testenv.ConfigJSON()))
}

// TestConformanceColdPath runs the suite without a pool: every session
// starts its own container.
func TestConformanceColdPath(t *testing.T) {
	testenv.RequireContainerd(t)
	if testing.Short() {
		t.Skip("the cold-path run repeats the suite; skipped in -short mode")
	}
	bin := buildPlugin(t)
	sandboxtest.Run(t, bin, sandboxtest.WithConfig(testenv.ConfigJSON()))
}

// TestConformanceRunc runs the cold-path suite with runc, the runtime
// "auto" falls back to where crun is missing or cannot manage the cgroups.
func TestConformanceRunc(t *testing.T) {
	testenv.RequireContainerd(t)
	if testing.Short() {
		t.Skip("repeats the suite with another runtime; skipped in -short mode")
	}
	bin := buildPlugin(t)
	sandboxtest.Run(t, bin, sandboxtest.WithConfig(testenv.ConfigJSONRuntime("runc")))
}

// containerdClient connects to the private containerd, in the tests'
// namespace; the client closes with the test.
func containerdClient(t *testing.T) (context.Context, *client.Client) {
	t.Helper()
	c, err := client.New(daemon.DefaultAddress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return namespaces.WithNamespace(context.Background(), testenv.Namespace), c
}

func buildPlugin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OPENSANDBOX_PLUGIN_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "mcpruntime-plugin-opensandbox")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	// Static: the binary also runs inside the containers as their init.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	return bin
}
