package vmm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
)

// A missing kernel or root image is reported by QEMU at start-up; the
// error must carry QEMU's own explanation.
func TestQEMUMissingKernel(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	dir, err := os.MkdirTemp("", "vmm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	q := &QEMU{Binary: "qemu-system-x86_64"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	missing := filepath.Join(dir, "no-such-vmlinux")
	_, err = q.Launch(ctx, Spec{ID: "t", Dir: filepath.Join(dir, "vm"), MemoryMiB: 128, VCPUs: 1, Accel: AccelTCG,
		Image: &image.Image{Kernel: missing, Initramfs: missing, Rootfs: filepath.Join(dir, "no-rootfs")}})
	if err == nil || !strings.Contains(err.Error(), "no-") {
		t.Fatalf("launch with a missing kernel: %v", err)
	}
}

// An absent or too old VMM is refused with install advice.
func TestCheckAbsentAndOld(t *testing.T) {
	ctx := context.Background()
	if err := (&QEMU{Binary: "/nonexistent/qemu"}).Check(ctx); !errors.Is(err, ErrNoVMM) || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("absent qemu: %v", err)
	}
	if err := (&CloudHypervisor{Binary: "/nonexistent/ch"}).Check(ctx); !errors.Is(err, ErrNoVMM) || !strings.Contains(err.Error(), "not packaged") {
		t.Fatalf("absent cloud-hypervisor: %v", err)
	}
	old := filepath.Join(t.TempDir(), "qemu-old")
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 'QEMU emulator version 2.11.1'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (&QEMU{Binary: old}).Check(ctx); err == nil || !strings.Contains(err.Error(), "6.0 or newer") {
		t.Fatalf("old qemu: %v", err)
	}
}
