package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadOnlyRuntime: the runtime copy has the binary's content, runs,
// cannot be written, and is made (and mounted) once per content.
func TestReadOnlyRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	src := filepath.Join(t.TempDir(), "fake-runtime")
	body := []byte("#!/bin/sh\necho runtime-" + t.Name() + "-$$\n")
	if err := os.WriteFile(src, body, 0o755); err != nil {
		t.Fatal(err)
	}
	ro, err := readOnlyRuntime(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(filepath.Dir(ro), syscall.MNT_DETACH)
		_ = os.RemoveAll(filepath.Dir(ro))
	})
	if !strings.HasPrefix(ro, runDir+"/runtime/") || filepath.Base(ro) != "fake-runtime" {
		t.Fatalf("copy at %s", ro)
	}
	if got, _ := os.ReadFile(ro); !bytes.Equal(got, body) {
		t.Fatalf("copy content %q", got)
	}
	if out, err := exec.Command(ro).Output(); err != nil || !strings.HasPrefix(string(out), "runtime-") {
		t.Fatalf("copy does not run: %v %q", err, out)
	}
	if err := os.WriteFile(ro, []byte("overwritten"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing the copy: %v, want EROFS", err)
	}
	again, err := readOnlyRuntime(src)
	if err != nil || again != ro {
		t.Fatalf("second call: %s %v, want %s", again, err, ro)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	n := 0
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == filepath.Dir(ro) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d mounts of %s, want 1", n, filepath.Dir(ro))
	}
}
