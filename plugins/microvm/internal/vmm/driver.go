// Package vmm abstracts the virtual machine monitors the backend drives:
// QEMU (microvm machine, QMP) and Cloud Hypervisor (REST API). A driver
// boots a guest image or restores a snapshot and hands back a Machine with
// a connected agent channel.
package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Spec describes one VM.
type Spec struct {
	// ID names the VM (process name, sweep marker).
	ID string
	// Dir is a private directory for the VM's sockets and files. Unix
	// socket paths are limited to 108 bytes: keep it short.
	Dir       string
	Image     *image.Image
	MemoryMiB int
	VCPUs     int
	// Accel is AccelKVM or AccelTCG (drivers without TCG refuse it).
	Accel string
	// WorkspaceMiB sizes the guest workspace's disk (see wsdisk.go); 0:
	// the guest keeps its workspace in a tmpfs. QEMU only: the Cloud
	// Hypervisor driver ignores it.
	WorkspaceMiB int
	// WorkspaceSlot adds a second, empty workspace disk of that size,
	// which a running VM can be given a prebuilt workspace image on
	// (WorkspaceSwapper) and mount in place of the first.
	WorkspaceSlot bool
	Logger        hclog.Logger
}

// Machine is a running VM.
type Machine interface {
	// Agent is the byte stream to the guest agent.
	Agent() io.ReadWriteCloser
	// Snapshot pauses the VM, saves its full state into dir, and resumes
	// it. It returns the size of what was written.
	Snapshot(ctx context.Context, dir string) (int64, error)
	// Kill stops the VM at once and waits for its process.
	Kill()
	// Done is closed when the VMM process has exited.
	Done() <-chan struct{}
	// Describe says why the VM stopped (exit status and the console's
	// last lines, e.g. a guest kernel panic).
	Describe() string
	// Pid is the VMM process id.
	Pid() int
}

// Driver launches and restores VMs with one VMM.
type Driver interface {
	Name() string
	// Check verifies the VMM binary is present and recent enough; the
	// error says how to install it.
	Check(ctx context.Context) error
	// Accels lists the accelerators the driver can use.
	Accels() []string
	Launch(ctx context.Context, spec Spec) (Machine, error)
	Restore(ctx context.Context, spec Spec, snapshotDir string) (Machine, error)
	// Attach adopts the running VM spec names (its Dir holds the VMM's
	// pid file and sockets), started by an earlier plugin process.
	Attach(ctx context.Context, spec Spec) (Machine, error)
}

// ErrNoVMM means the VMM binary is missing or unusable.
var ErrNoVMM = errors.New("virtual machine monitor not available")

// New returns the driver for a VMM name ("qemu" or "cloud-hypervisor").
// binary overrides the executable looked up on PATH.
func New(name, binary string) (Driver, error) {
	switch name {
	case "qemu", "":
		return &QEMU{Binary: orDefault(binary, "qemu-system-x86_64")}, nil
	case "cloud-hypervisor", "ch":
		return &CloudHypervisor{Binary: orDefault(binary, "cloud-hypervisor")}, nil
	}
	return nil, fmt.Errorf("unknown vmm %q (want qemu or cloud-hypervisor)", name)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// hostTSCkHz is the host TSC frequency, passed to TCG guests: without it
// the guest's timer calibration sometimes never finishes under emulation.
func hostTSCkHz() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		var k int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &k); err == nil && k > 0 {
			return k
		}
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "cpu MHz"); ok {
			var mhz float64
			if _, err := fmt.Sscan(strings.TrimLeft(v, " \t:"), &mhz); err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}

// kernelCmdline is the guest command line shared by the drivers.
func kernelCmdline(spec Spec, console, channel string) string {
	parts := []string{"console=" + console, "quiet", "panic=-1", "reboot=t", "random.trust_cpu=on",
		"mcpruntime.channel=" + channel}
	if spec.WorkspaceMiB > 0 {
		parts = append(parts, "mcpruntime.wsdisk="+WorkspaceLabel)
		if spec.WorkspaceSlot {
			parts = append(parts, "mcpruntime.wsslot="+WorkspaceSlotLabel)
		}
	}
	if spec.Accel == AccelTCG {
		if k := hostTSCkHz(); k > 0 {
			parts = append(parts, fmt.Sprintf("tsc_early_khz=%d", k))
		}
	}
	return strings.Join(parts, " ")
}
