package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// compileKernel stores the kernel's byte-code, compiled by the image's own
// interpreter (chrooted into root, the image mounted read-only), in the
// kernel directory every container mounts. Python would otherwise compile
// the kernel at every container start: ~9 ms on the cold path. It runs once
// per image and kernel. Failing is not fatal: the kernel then compiles at
// start as before.
func (e *engine) compileKernel(ctx context.Context, root string) {
	start := time.Now()
	compiled, err := kernel.EnsureByteCode(e.kernelDir, e.img.ChainID, func(src []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "chroot", root, "/usr/bin/python3", "-I", "-B", "-c",
			kernel.CompileProgram(guestKernelDir+"/"+kernel.FileName))
		cmd.Stdin = bytes.NewReader(src)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, nil
	})
	switch {
	case err != nil:
		e.log.Warn("kernel byte-code not compiled; containers compile the kernel at start", "error", err)
	case compiled:
		e.log.Debug("kernel byte-code compiled by the image's python", "took", time.Since(start))
	}
}
