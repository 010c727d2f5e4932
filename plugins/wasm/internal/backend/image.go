package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/artefacts"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
)

// preinitProgram runs in the pre-init run: the kernel imported and the
// warm imports done, names cleaned up, the programs' variables dropped from
// the environment the image keeps.
func preinitProgram(imports []string) string {
	var b strings.Builder
	b.WriteString("import os, sys, importlib\n")
	b.WriteString("os.environ.pop('MCPRUNTIME_PREINIT', None)\nos.environ.pop('MCPRUNTIME_RESUME', None)\n")
	fmt.Fprintf(&b, "sys.path.insert(0, %q)\nimport mcpruntime_kernel\ndel sys.path[0]\n", guest.KernelMount)
	for _, m := range imports {
		fmt.Fprintf(&b, "importlib.import_module(%q)\n", m)
	}
	b.WriteString("del os, sys, importlib, mcpruntime_kernel\n")
	// Everything made so far lives as long as the interpreter: out of the
	// collector's sight, a session's first collections do not walk (and
	// write to, which costs a copy-on-write fault per page) the image.
	b.WriteString("import gc\ngc.collect()\ngc.freeze()\ndel gc\n")
	return b.String()
}

// resumeProgram runs the kernel's loop in a restored instance.
const resumeProgram = "__import__('sys').modules['mcpruntime_kernel'].main()\n"

// image is a pre-initialized python.wasm: its path and cache key.
type image struct {
	path, key string
}

// ensureImage builds (once per python.wasm, stdlib build, kernel and warm
// imports) the pre-initialized image sessions start from, and compiles it
// into the engine's cache so workers only map it. It returns nil when
// python.wasm has no pre-init entry points (workers then start from
// _start).
func ensureImage(ctx context.Context, eng guest.Engine, py *artefacts.Python, kernelDir, cache, empty string, imports []string, log hclog.Logger) (*image, error) {
	start := time.Now()
	h := sha256.New()
	h.Write(kernel.Source())
	if info, err := os.ReadFile(filepath.Join(py.Dir, "build-info.json")); err == nil {
		h.Write(info) // the stdlib's build: the image holds modules from it
	}
	preinit := preinitProgram(imports)
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s", preinit, resumeProgram, strings.Join(worker.GuestEnv(), "\x00"))
	env := append(worker.GuestEnv(), "MCPRUNTIME_PREINIT="+preinit, "MCPRUNTIME_RESUME="+resumeProgram)
	path, key, err := guest.EnsureSnapshot(ctx, eng, guest.SnapshotOptions{
		Wasm: py.Wasm, Dir: filepath.Join(cache, "images"), Key: hex.EncodeToString(h.Sum(nil)),
		Run: guest.RunOptions{
			Env: env, StdlibDir: py.Lib, KernelDir: kernelDir,
			Mounts: []guest.Mount{
				{Dir: empty, ReadOnly: true, Guest: sdk.GuestWorkspace},
				{Dir: empty, ReadOnly: true, Guest: sdk.GuestLib},
			},
		},
	})
	if errors.Is(err, guest.ErrNoPreinit) {
		log.Warn("sessions start without a pre-initialized image", "error", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pre-initialized image: %w", err)
	}
	built := time.Since(start)
	if _, err := eng.Load(ctx, path, key); err != nil {
		return nil, fmt.Errorf("pre-initialized image: %w", err)
	}
	log.Info("pre-initialized image ready", "image", path, "engine", eng.Version(), "build", built, "total", time.Since(start))
	return &image{path: path, key: key}, nil
}
