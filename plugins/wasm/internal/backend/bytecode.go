package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// compileKernel stores the kernel's byte-code, compiled by python.wasm
// itself, beside the installed kernel: every worker would otherwise compile
// the kernel when it starts (tens of milliseconds under wasm). Keyed by
// kernel and interpreter, so it runs once per new kernel or python.wasm.
// Failing is not fatal: workers then compile the kernel as a script would.
func compileKernel(ctx context.Context, rt *guest.Runtime, wasm, lib, kernelDir string, log hclog.Logger) {
	sum := sha256.Sum256(kernel.Source())
	key := hex.EncodeToString(sum[:])
	if st, err := os.Stat(wasm); err == nil {
		key += fmt.Sprintf(" %d %d", st.Size(), st.ModTime().UnixNano())
	}
	stamp := filepath.Join(kernelDir, ".bytecode-key")
	if cur, err := os.ReadFile(stamp); err == nil && string(cur) == key {
		return
	}
	start := time.Now()
	var out, stderr bytes.Buffer
	code, err := rt.Run(ctx, guest.RunOptions{
		Args:      []string{"-s", "-B", "-c", kernel.CompileProgram(guest.KernelMount + "/" + kernel.FileName)},
		Env:       worker.GuestEnv(),
		Stdin:     bytes.NewReader(kernel.Source()),
		Stdout:    &out,
		Stderr:    &stderr,
		StdlibDir: lib,
	})
	if err == nil && code != 0 {
		err = fmt.Errorf("python.wasm exited with status %d: %s", code, bytes.TrimSpace(stderr.Bytes()))
	}
	if err == nil {
		err = kernel.InstallByteCode(kernelDir, out.Bytes())
	}
	if err == nil {
		err = os.WriteFile(stamp, []byte(key), 0o644)
	}
	if err != nil {
		log.Warn("kernel byte-code not compiled; workers compile the kernel at start", "error", err)
		return
	}
	log.Debug("kernel byte-code compiled by python.wasm", "took", time.Since(start))
}
