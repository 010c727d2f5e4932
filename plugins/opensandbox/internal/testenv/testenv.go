// Package testenv decides whether the machine can run the backend's tests
// and gives them a consistent configuration.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// Namespace is the containerd namespace tests use, apart from a user's.
const Namespace = "mcpruntime-opensandbox-test"

// Where the plugin keeps its runtime files (see the sandbox package).
const (
	RunDir = "/run/mcpruntime/opensandbox"
	// OwnersDir holds the owner locks of running plugin processes.
	OwnersDir = RunDir + "/owners"
	// Slots and FIFOs are the test namespace's slot and FIFO directories.
	Slots = RunDir + "/" + Namespace + "/slots"
	FIFOs = RunDir + "/" + Namespace + "/fifo"
)

// Instance is the owner id of the running plugin process pid (configured:
// it claims its id in Configure).
func Instance(pid int) (string, error) { return owner.Find(OwnersDir, pid) }

// ConfigJSON is the backend config block tests use.
func ConfigJSON() string {
	return `{"namespace": "` + Namespace + `"}`
}

// ConfigJSONGrace is ConfigJSON with the recovery grace set: how long the
// session containers of a killed plugin are kept for RecoverSessions.
// Tests that expect the next start to sweep at once use "0s".
func ConfigJSONGrace(grace string) string {
	return `{"namespace": "` + Namespace + `", "recovery_grace": "` + grace + `"}`
}

// ConfigJSONRuntime is ConfigJSON with the OCI runtime set.
func ConfigJSONRuntime(runtime string) string {
	return `{"namespace": "` + Namespace + `", "runtime": "` + runtime + `"}`
}

// RequireContainerd skips the test when containerd genuinely cannot run
// here (not installed, or not root), and otherwise makes sure the private
// daemon answers. A daemon that is installed but fails to start fails the
// test: that is a bug to see, not a reason to skip.
func RequireContainerd(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containers need root: run the opensandbox tests as root")
	}
	if daemon.Answers(context.Background(), daemon.DefaultAddress) == nil {
		return
	}
	for _, bin := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make -C plugins/opensandbox deps installs it)", bin)
		}
	}
	if err := daemon.Ensure(context.Background(), daemon.DefaultPaths(), nil); err != nil {
		t.Fatalf("start the private containerd: %v", err)
	}
}
