package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// Doctor checks what the backend needs on this host and says how to fix
// what is missing: VMM binaries, /dev/kvm, the guest agent and the image.
func Doctor(args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	dir := fs.String("dir", DefaultImageDir(), "image cache directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := 0
	report := func(name string, err error, ok string) {
		if err != nil {
			fmt.Printf("  %-18s %v\n", name+":", err)
			return
		}
		fmt.Printf("  %-18s ok — %s\n", name+":", ok)
	}
	fmt.Println("microvm backend checks")
	qemu, _ := vmm.New("qemu", "")
	err := qemu.Check(ctx)
	if err != nil {
		bad++
	}
	report("qemu", err, "qemu-system-x86_64 usable (TCG always; KVM when the probe passes)")
	ch, _ := vmm.New("cloud-hypervisor", "")
	report("cloud-hypervisor", ch.Check(ctx), "cloud-hypervisor on PATH (needs hardware KVM)")
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		report("kvm", fmt.Errorf("unavailable (%v): VMs run under TCG emulation, roughly 10-50x slower", err), "")
	} else {
		f.Close()
		report("kvm", nil, "/dev/kvm opens; accel = \"auto\" probes a guest at configure time and falls back to TCG if KVM cannot run it (e.g. pagetable-based /dev/kvm without vmx/svm)")
	}
	agent, err := FindAgent("")
	if err != nil {
		bad++
	}
	report("guest agent", err, agent)
	if _, err := os.Stat(*dir + "/current.json"); err != nil {
		report("guest image", errors.New("not built yet: run `make image` (or the first Configure builds it, ~1 min)"), "")
	} else {
		report("guest image", nil, "built in "+*dir)
	}
	if bad > 0 {
		return fmt.Errorf("%d required check(s) failed", bad)
	}
	return nil
}
