package backend

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/owner"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// Runtime files (sockets, pid files) live in a short directory below the
// system temp dir, one per state dir (the run root). Each plugin process
// claims an owner id there (sdk/owner: the lock file <id>.lock, held for
// the process's life) and keeps its VMs in <root>/<id>/<vm>/, each with
// the pid file of its VMM. A killed plugin leaves its lock free: the sweep
// (every run root of the host, in the background from the first Configure)
// kills the VMMs recorded there, if their command line still names their
// VM, and removes the files. Run dirs whose lock is held are never touched.
// Run dirs of the scheme before owner ids (<pid>-<12 hex digits>, with the
// same lock file beside them) are swept the same way.

// RunRoot is the directory holding the runtime files of plugins using stateDir.
func RunRoot(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	return filepath.Join(os.TempDir(), runRootPrefix+shortHash(abs))
}

const runRootPrefix = "mcpruntime-microvm-"

var (
	// runRootName matches RunRoot's names (not, say, a state dir of the
	// same prefix).
	runRootName = regexp.MustCompile(`^` + runRootPrefix + `[0-9a-f]{8}$`)
	// legacyRunDir is a run dir of the pid scheme: <pid>-<12 hex>.
	legacyRunDir = regexp.MustCompile(`^[0-9]+-[0-9a-f]{12}$`)
)

// claimRunDir claims an owner id under stateDir's run root and returns
// this process's directory there (reusing current when it is already
// under the same root) and the function that removes it and releases the
// claim.
func claimRunDir(stateDir string, log hclog.Logger, current string, unlock func()) (string, func(), error) {
	root := RunRoot(stateDir)
	if current != "" && filepath.Dir(current) == root {
		return current, unlock, nil
	}
	in, err := owner.Claim(root)
	if err != nil {
		return "", nil, fmt.Errorf("run dir: %w", err)
	}
	dir := filepath.Join(root, in.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if rerr := in.Release(); rerr != nil {
			log.Warn("release run dir claim", "error", rerr)
		}
		return "", nil, fmt.Errorf("run dir: %w", err)
	}
	log.Debug("run dir claimed", "dir", dir)
	return dir, func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove run dir", "dir", dir, "error", err)
		}
		if err := in.Release(); err != nil {
			log.Warn("release run dir claim", "error", err)
		}
	}, nil
}

// SweepRunDirs removes what dead plugin processes left in every run root
// of the host (all state dirs: the VMMs die with their plugin through
// Pdeathsig, but their files stay). It returns how many dead owners' run
// dirs it removed.
func SweepRunDirs(log hclog.Logger) int {
	roots, err := os.ReadDir(os.TempDir())
	if err != nil {
		log.Warn("sweep run dirs", "error", err)
		return 0
	}
	n := 0
	for _, r := range roots {
		if r.IsDir() && runRootName.MatchString(r.Name()) {
			n += sweepRoot(filepath.Join(os.TempDir(), r.Name()), log)
		}
	}
	return n
}

// sweepRoot sweeps one run root: run dirs whose owner is dead, then dead
// owners' lock files.
func sweepRoot(root string, log hclog.Logger) int {
	ents, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("sweep run dirs", "root", root, "error", err)
		}
		return 0
	}
	ids := map[string]bool{}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".lock")
		if owner.ValidID(name) || legacyRunDir.MatchString(name) {
			ids[name] = true
		}
	}
	n := 0
	for id := range ids {
		dir := filepath.Join(root, id)
		dead, err := owner.Reap(root, id, func() error { return sweepInstance(dir, log) })
		if err != nil {
			log.Warn("sweep run dir of a dead plugin process", "dir", dir, "error", err)
		}
		if dead {
			n++
		}
	}
	if _, err := owner.Sweep(root); err != nil {
		log.Warn("sweep run dir locks", "root", root, "error", err)
	}
	return n
}

// sweepInstance kills the VMMs a dead plugin process recorded and removes
// its run dir.
func sweepInstance(dir string, log hclog.Logger) error {
	vms, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep %s: %w", dir, err)
	}
	for _, v := range vms {
		log.Info("removing a VM left by a dead plugin process", "vm", v.Name(), "run_dir", dir)
		vmm.Sweep(filepath.Join(dir, v.Name()), "mcpruntime-microvm-"+v.Name())
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sweep %s: %w", dir, err)
	}
	return nil
}
