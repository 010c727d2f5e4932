package backend

import (
	"fmt"
	"os"
	"path/filepath"
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
