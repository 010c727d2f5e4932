package backend

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// compileKernel stores the kernel's byte-code, compiled by python.wasm
// itself, beside the installed kernel: every worker would otherwise compile
// the kernel when it starts (tens of milliseconds under wasm). It runs once
// per kernel and python.wasm. Failing is not fatal: workers then compile
// the kernel as a script would.
func compileKernel(ctx context.Context, rt guest.Module, wasm, lib, kernelDir string, log hclog.Logger) {
	interpreter := wasm
	if st, err := os.Stat(wasm); err == nil {
		interpreter = fmt.Sprintf("%s %d %d", wasm, st.Size(), st.ModTime().UnixNano())
	}
	start := time.Now()
	compiled, err := kernel.EnsureByteCode(kernelDir, interpreter, func(src []byte) ([]byte, error) {
		var out, stderr bytes.Buffer
		code, err := rt.Run(ctx, guest.RunOptions{
			Args:      []string{"-s", "-B", "-c", kernel.CompileProgram(guest.KernelMount + "/" + kernel.FileName)},
			Env:       worker.GuestEnv(),
			Stdin:     bytes.NewReader(src),
			Stdout:    &out,
			Stderr:    &stderr,
			StdlibDir: lib,
		})
		if err == nil && code != 0 {
			err = fmt.Errorf("python.wasm exited with status %d: %s", code, bytes.TrimSpace(stderr.Bytes()))
		}
		return out.Bytes(), err
	})
	switch {
	case err != nil:
		log.Warn("kernel byte-code not compiled; workers compile the kernel at start", "error", err)
	case compiled:
		log.Debug("kernel byte-code compiled by python.wasm", "took", time.Since(start))
	}
}
