package backend

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// StageEnv, set to "0" in the plugin's environment, keeps pooled workers of
// an engine without late binding from staging (the unprivileged path, for
// tests and for systems whose mount namespaces misbehave).
const StageEnv = "MCPRUNTIME_WASM_STAGE"

// setupStage decides whether workers stage (see worker.Config.StageDir):
// only for an engine whose mounts are fixed at instantiation (wasmtime),
// only as root (a mount namespace of one's own and tmpfs/bind mounts need
// CAP_SYS_ADMIN). It makes the run dir's empty mount point for it.
func (l *launcher) setupStage(run string) error {
	if l.lateBinding || os.Geteuid() != 0 || os.Getenv(StageEnv) == "0" {
		return nil
	}
	dir := filepath.Join(run, "stage")
	if err := os.Mkdir(dir, 0o555); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	l.cfg.StageDir = dir
	l.staged.Store(true)
	return nil
}

// mountTrees clones the mounts at the binding's host directories as
// detached mount trees (open_tree OPEN_TREE_CLONE, not recursive): the
// worker moves them into its namespace. Paths are resolved here, in the
// plugin's mount namespace, so a file system mounted on the host after the
// worker started (a workspace on a new volume) is the one bound; the
// worker's own copy of the host's mounts is as old as the worker.
func mountTrees(workspace string, mounts []sdk.LibMount) ([]int, error) {
	fds := make([]int, 0, 1+len(mounts))
	for _, dir := range append([]string{workspace}, libSources(mounts)...) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("clone the mount at %s: %w", dir, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func libSources(mounts []sdk.LibMount) []string {
	out := make([]string, len(mounts))
	for i, m := range mounts {
		out[i] = m.Source
	}
	return out
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
