// Package kernel holds the Python kernel every mcpruntime backend runs and
// the Go side of its framed protocol.
//
// A backend starts kernel.py (see Source) with any Python 3.11+ and connects
// its two ends to a Conn; the Conn runs code, streams output, relays the
// kernel's host calls to an sdk.Host, and enforces the output cap. Only the
// transport differs between backends: pipes to a local process, FIFOs to a
// container task, a virtio-serial port into a VM, or stdin/stdout of
// CPython-on-WASI.
package kernel

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed kernel.py
var source []byte

// Source returns the kernel program (Python source).
func Source() []byte { return append([]byte(nil), source...) }

// FileName is the name the kernel is installed under.
const FileName = "mcpruntime_kernel.py"

// Install writes the kernel into dir (created if needed) and returns its
// path. The write is atomic, so concurrent installs are safe.
func Install(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(source) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".kernel-*")
	if err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(source); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install kernel: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install kernel: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	return path, nil
}
