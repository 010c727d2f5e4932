package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// compileKernel stores the kernel's byte-code, compiled by the image's own
// interpreter (chrooted into root, the image mounted read-only), in the
// kernel directory every container mounts. Python would otherwise compile
// the kernel at every container start: ~9 ms on the cold path. The result
// is keyed by image and kernel, so this runs once per new image or kernel.
// Failing is not fatal: the kernel then compiles at start as before.
func (e *engine) compileKernel(ctx context.Context, root string) {
	sum := sha256.Sum256(kernel.Source())
	key := e.img.ChainID + " " + hex.EncodeToString(sum[:])
	stamp := filepath.Join(e.kernelDir, ".bytecode-key")
	if cur, err := os.ReadFile(stamp); err == nil && string(cur) == key {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chroot", root, "/usr/bin/python3", "-I", "-B", "-c",
		kernel.CompileProgram(guestKernelDir+"/"+kernel.FileName))
	cmd.Stdin = bytes.NewReader(kernel.Source())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		err = kernel.InstallByteCode(e.kernelDir, out)
	}
	if err == nil {
		err = os.WriteFile(stamp, []byte(key), 0o644)
	}
	if err != nil {
		e.log.Warn("kernel byte-code not compiled; containers compile the kernel at start",
			"error", fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes())))
		return
	}
	e.log.Debug("kernel byte-code compiled by the image's python", "took", time.Since(start))
}
