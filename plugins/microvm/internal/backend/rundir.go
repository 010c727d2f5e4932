package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// Runtime files (sockets, pid files) live in a short directory below the
// system temp dir, one per state dir, with a subdirectory per plugin
// process guarded by a lock file. A plugin that was killed leaves its lock
// unheld: the next one to start kills the VMs recorded there and removes
// the files.

// RunRoot is the directory holding the runtime files of plugins using stateDir.
func RunRoot(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	return filepath.Join(os.TempDir(), "mcpruntime-microvm-"+shortHash(abs))
}

// claimRunDir sweeps dead instances and returns this process's directory
// (reusing current when it is already under the same root).
func claimRunDir(stateDir string, log hclog.Logger, current string, unlock func()) (string, func(), error) {
	root := RunRoot(stateDir)
	if current != "" && filepath.Dir(current) == root {
		return current, unlock, nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", nil, fmt.Errorf("run dir: %w", err)
	}
	sweep(root, log)
	name := strconv.Itoa(os.Getpid()) + "-" + newID()
	lock, err := os.OpenFile(filepath.Join(root, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("run dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return "", nil, fmt.Errorf("run dir lock: %w", err)
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		lock.Close()
		return "", nil, fmt.Errorf("run dir: %w", err)
	}
	return dir, func() {
		_ = os.RemoveAll(dir)
		_ = os.Remove(lock.Name())
		lock.Close()
	}, nil
}

// sweep removes what plugin processes that no longer hold their lock left.
func sweep(root string, log hclog.Logger) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			if e.IsDir() {
				if _, err := os.Stat(filepath.Join(root, e.Name()+".lock")); os.IsNotExist(err) {
					sweepInstance(filepath.Join(root, e.Name()), log)
				}
			}
			continue
		}
		f, err := os.OpenFile(filepath.Join(root, e.Name()), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			sweepInstance(filepath.Join(root, name), log)
			_ = os.Remove(f.Name())
		}
		f.Close()
	}
}

func sweepInstance(dir string, log hclog.Logger) {
	vms, _ := os.ReadDir(dir)
	for _, v := range vms {
		log.Info("removing a VM left by a previous plugin process", "vm", v.Name())
		vmm.Sweep(filepath.Join(dir, v.Name()), "mcpruntime-microvm-"+v.Name())
	}
	_ = os.RemoveAll(dir)
}
