package image

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// Guest paths the root file system must provide: the rootfs is mounted
// read-only, so the runtime cannot create mount points itself.
var mountPoints = []string{
	"proc", "dev", "sys", "run", "tmp", "workspace",
	"mcpruntime/lib", "mcpruntime/kernel", "mcpruntime/state",
}

// MountPoints are the paths (relative to /) a sandbox image must provide.
func MountPoints() []string { return append([]string(nil), mountPoints...) }

// SandboxUID is the unprivileged user the kernel runs as.
const SandboxUID = 1000

// buildRoot assembles debs into dir as the sandbox's Python root, with
// bytecode precompiled (the rootfs is read-only at run time), and checks
// that the requested Python libraries (modules) import.
func buildRoot(ctx context.Context, dir string, debs, modules []string, log hclog.Logger) error {
	err := rootfs.Assemble(ctx, dir, debs, rootfs.WithLogger(log),
		rootfs.WithUser("sandbox", SandboxUID, "/workspace"), rootfs.WithDirs(mountPoints...),
		rootfs.WithSymlink("usr/bin/python3", "python3.11"), rootfs.WithSymlink("usr/bin/python", "python3.11"),
		rootfs.WithSymlink("usr/bin/sh", "dash"))
	if err != nil {
		return err
	}
	log.Info("precompiling Python bytecode")
	// Some files in Debian's tree are deliberately not valid Python 3
	// (test fixtures); they stay uncompiled and the rest is compiled. What
	// matters is checked next: that everything imports.
	compileErr := rootfs.CompileBytecode(ctx, dir, "/usr/lib/python3.11", "/usr/lib/python3/dist-packages")
	if compileErr != nil {
		log.Warn("some Python files did not compile", "error", compileErr)
	}
	// Import what was asked for (which imports what it needs): a missing
	// shared library shows here rather than in a user's session. Not every
	// top-level package of dist-packages: dependencies may hold optional
	// helpers that need what nobody installed (pythran's omp needs libomp).
	check := exec.CommandContext(ctx, "chroot", dir, "/usr/bin/python3", "-c", importCheck, strings.Join(modules, ","))
	check.Env = []string{"PATH=/usr/bin", "LANG=C.UTF-8"}
	if out, err := check.CombinedOutput(); err != nil {
		return fmt.Errorf("the assembled python does not run: %w: %s", err, out)
	}
	return rootfs.MatplotlibFontCache(ctx, dir)
}

const importCheck = `import json, ssl, sqlite3, pickle, resource, importlib, sys
for n in filter(None, sys.argv[1].split(",")):
    importlib.import_module(n)
`
