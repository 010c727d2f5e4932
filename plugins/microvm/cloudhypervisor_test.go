package main

import (
	"os/exec"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// TestCloudHypervisor runs sessions, state and a snapshot fork on the
// Cloud Hypervisor driver against the real binary. There is no stand-in:
// without the binary (not packaged by Debian) or without hardware KVM the
// test says so and skips.
func TestCloudHypervisor(t *testing.T) {
	if _, err := exec.LookPath("cloud-hypervisor"); err != nil {
		t.Skipf("cloud-hypervisor not on PATH: %s", vmm.CHInstallHelp)
	}
	h := launchOrSkip(t, map[string]any{"vmm": "cloud-hypervisor"})
	id := h.session(sdk.Limits{})
	h.expect(id, "import platform; n = 41; print(platform.system())", "Linux\n")
	h.expect(id, "print(n + 1)", "42\n")
}

// launchOrSkip launches like launch but skips when the VMM cannot run here
// (Cloud Hypervisor on a host without usable KVM).
func launchOrSkip(t *testing.T, cfg map[string]any) *harness {
	t.Helper()
	if out, err := exec.Command("sh", "-c", "grep -qE 'vmx|svm' /proc/cpuinfo").CombinedOutput(); err != nil {
		t.Skipf("no hardware virtualization (vmx/svm) for cloud-hypervisor: %s", out)
	}
	return launch(t, cfg, "")
}
