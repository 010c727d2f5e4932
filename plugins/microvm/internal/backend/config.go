package backend

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// config is the plugin's runtime.hcl block.
type config struct {
	VMM          string  `json:"vmm"`
	VMMBinary    string  `json:"vmm_binary"`
	Accel        string  `json:"accel"`
	Memory       string  `json:"memory"`
	VCPUs        int     `json:"vcpus"`
	ImageDir     string  `json:"image_dir"`
	Agent        string  `json:"agent"`
	BootTimeout  string  `json:"boot_timeout"`
	Grace        string  `json:"interrupt_grace"`
	MaxWorkspace string  `json:"max_workspace"`
	PoolSize     float64 `json:"pool_size"`
	// RestoreStandby is how many of the most recent snapshots keep a VM
	// restored and warmed ahead of their next Restore (0: none).
	RestoreStandby float64 `json:"restore_standby"`
	// RecoverGrace is how long the VMs of a crashed plugin's sessions
	// wait for their core to recover them before a sweep removes them.
	RecoverGrace string `json:"recover_grace"`
	// WorkspaceDisk keeps the guest's copy of the workspace on a disk of
	// its own (QEMU) rather than in guest memory (a tmpfs).
	WorkspaceDisk bool `json:"workspace_disk"`
	// WorkspaceImage gives a new session's VM its workspace as a prebuilt
	// disk image instead of sending the files (with WorkspaceDisk).
	WorkspaceImage bool `json:"workspace_image"`

	memoryMiB    int
	bootTimeout  time.Duration
	grace        time.Duration
	maxWorkspace int64
	standby      int
	recoverGrace time.Duration
}

func defaultConfig() config {
	return config{VMM: "qemu", Accel: "auto", Memory: "512MiB", VCPUs: 1, BootTimeout: "120s", Grace: "3s", MaxWorkspace: "512MiB", PoolSize: -1, RestoreStandby: 1, RecoverGrace: "2m", WorkspaceDisk: true, WorkspaceImage: true}
}

func configSpec() *sdk.ConfigSpec {
	d := defaultConfig()
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "vmm", Type: sdk.TypeString, Default: d.VMM, Description: `virtual machine monitor: "qemu" (microvm machine) or "cloud-hypervisor" (needs KVM)`},
		{Name: "vmm_binary", Type: sdk.TypeString, Description: "path of the VMM executable (default: qemu-system-x86_64 or cloud-hypervisor on PATH)"},
		{Name: "accel", Type: sdk.TypeString, Default: d.Accel, Description: `"auto" (KVM where a probe guest really runs under it, else TCG emulation), "kvm" or "tcg"`},
		{Name: "memory", Type: sdk.TypeSize, Default: d.Memory, Description: "memory of each microVM"},
		{Name: "vcpus", Type: sdk.TypeNumber, Default: d.VCPUs, Description: "virtual CPUs of each microVM"},
		{Name: "image_dir", Type: sdk.TypeString, Description: "where the guest image is built and cached (default: the user cache dir, or $MCPRUNTIME_MICROVM_IMAGES)"},
		{Name: "agent", Type: sdk.TypeString, Description: "guest agent binary (default: mcpruntime-microvm-agent next to the plugin)"},
		{Name: "boot_timeout", Type: sdk.TypeDuration, Default: d.BootTimeout, Description: "how long a VM may take to boot or restore"},
		{Name: "interrupt_grace", Type: sdk.TypeDuration, Default: d.Grace, Description: "how long interrupted code may take to stop before the VM is killed"},
		{Name: "max_workspace", Type: sdk.TypeSize, Default: d.MaxWorkspace, Description: "largest workspace synchronised into a VM"},
		{Name: "pool_size", Type: sdk.TypeNumber, Description: "booted VMs kept ready (default: the core's pool size)"},
		{Name: "recover_grace", Type: sdk.TypeDuration, Default: d.RecoverGrace, Description: "how long the VMs of a crashed plugin's sessions are kept for the core to recover them (RecoverSessions) before they are removed"},
		{Name: "workspace_disk", Type: sdk.TypeBool, Default: d.WorkspaceDisk, Description: "keep the guest's copy of the workspace on a sparse disk of its own (max_workspace plus room for the file system; QEMU only) instead of in guest memory, so a workspace larger than the VM's memory works"},
		{Name: "workspace_image", Type: sdk.TypeBool, Default: d.WorkspaceImage, Description: "with workspace_disk: give a new session's VM its workspace as a disk image built on the host (kept ready per workspace, e2fsprogs' debugfs) instead of sending the files over the agent channel; changes since the image was built are sent as usual"},
		{Name: "restore_standby", Type: sdk.TypeNumber, Default: d.RestoreStandby, Description: "snapshots (the most recent ones) that each keep one VM restored and warmed ahead of their next restore; each holds a VM's memory while it waits (0: restores start cold)"},
	}}
}

func (c *config) resolve() error {
	var err error
	mem, err := parseSize(c.Memory)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if mem < 128<<20 {
		return fmt.Errorf("memory %s: at least 128MiB is needed for Python", c.Memory)
	}
	c.memoryMiB = int(mem >> 20)
	if c.VCPUs < 1 || c.VCPUs > 64 {
		return fmt.Errorf("vcpus %d: want 1..64", c.VCPUs)
	}
	if c.bootTimeout, err = time.ParseDuration(c.BootTimeout); err != nil {
		return fmt.Errorf("boot_timeout: %w", err)
	}
	if c.grace, err = time.ParseDuration(c.Grace); err != nil {
		return fmt.Errorf("interrupt_grace: %w", err)
	}
	if c.recoverGrace, err = time.ParseDuration(c.RecoverGrace); err != nil || c.recoverGrace < 0 {
		return fmt.Errorf("recover_grace %q: want a duration of 0 or more", c.RecoverGrace)
	}
	if c.maxWorkspace, err = parseSize(c.MaxWorkspace); err != nil {
		return fmt.Errorf("max_workspace: %w", err)
	}
	if c.RestoreStandby < 0 || c.RestoreStandby > maxStandby || c.RestoreStandby != float64(int(c.RestoreStandby)) {
		return fmt.Errorf("restore_standby %v: want a whole number 0..%d", c.RestoreStandby, maxStandby)
	}
	c.standby = int(c.RestoreStandby)
	switch c.Accel {
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf(`accel %q: want "auto", "kvm" or "tcg"`, c.Accel)
	}
	return nil
}

// parseSize reads "512MiB", "1G", "1048576".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}
