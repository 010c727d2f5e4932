package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/owner"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// Runtime files (sockets, pid files, consoles) live in a short directory
// below the system temp dir, one per state dir (the run root). Each plugin
// process claims an owner id there (sdk/owner: the lock file <id>.lock,
// held for the process's life) and keeps its VMs in <root>/<id>/<vm>/,
// each with the pid file of its VMM; <root>/<id>/core.json names the core
// process (pid and start time) the plugin serves, and a session's VM
// records its session in <vm>/session.json.
//
// VMMs do not die with their plugin (own process group, no parent-death
// signal): a plugin that crashed is restarted by its core, which then
// calls RecoverSessions, and the new plugin adopts the VMs of the
// sessions it is given. What a dead plugin left is removed by the sweep
// (every run root of the host, in the background from the first
// Configure), which kills the VMMs recorded there if their command line
// still names their VM:
//   - VMs that served no session (pooled, standby) at once;
//   - session VMs whose core is gone at once (nobody can recover them);
//   - session VMs whose core lives once the recovery grace has passed
//     since a sweep first saw them (<root>/<id>.orphaned records when), so
//     that the core's RecoverSessions, whichever plugin's sweep runs
//     first, finds them.
// RecoverSessions hands over explicitly: the dead plugins of its own core
// are taken over at once, their VMs of the sessions asked for adopted and
// all others killed, without waiting for the grace.
// Run dirs whose lock is held are never touched. Run dirs of the scheme
// before owner ids (<pid>-<12 hex digits>, with the same lock file beside
// them) are swept the same way.

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
	if err := writeCoreRecord(dir); err != nil {
		log.Warn("no core record in the run dir: VMs of this plugin cannot be recovered after a crash", "error", err)
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

// coreRecord names the core process a plugin serves (its parent).
type coreRecord struct {
	Pid   int    `json:"pid"`
	Start string `json:"start"`
}

const coreRecordFile = "core.json"

// thisCore is the core this plugin process serves.
func thisCore() (coreRecord, error) {
	pid := os.Getppid()
	st, err := owner.StartTime(pid)
	if err != nil {
		return coreRecord{}, fmt.Errorf("core process %d: %w", pid, err)
	}
	return coreRecord{Pid: pid, Start: st}, nil
}

func writeCoreRecord(dir string) error {
	c, err := thisCore()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, coreRecordFile), raw, 0o600)
}

// readCoreRecord returns the core a run dir's plugin served (ok false when
// it does not say).
func readCoreRecord(dir string) (coreRecord, bool) {
	raw, err := os.ReadFile(filepath.Join(dir, coreRecordFile))
	if err != nil {
		return coreRecord{}, false
	}
	var c coreRecord
	if json.Unmarshal(raw, &c) != nil || c.Pid <= 0 {
		return coreRecord{}, false
	}
	return c, true
}

// alive reports whether the core process still runs.
func (c coreRecord) alive() bool {
	st, err := owner.StartTime(c.Pid)
	return err == nil && st == c.Start
}

// orphanMarker records when a sweep first kept a dead plugin's session
// VMs for recovery.
func orphanMarker(root, id string) string { return filepath.Join(root, id+".orphaned") }

// errKept: a dead plugin's session VMs are kept for their core's recovery.
var errKept = errors.New("session VMs kept for recovery")

// SweepRunDirs removes what dead plugin processes left in every run root
// of the host (all state dirs), keeping session VMs a live core may still
// recover for grace (see the top of this file). It returns how many dead
// owners' run dirs it removed, and how long until the grace of the first
// run dir it kept ends (0: none kept).
func SweepRunDirs(log hclog.Logger, grace time.Duration) (int, time.Duration) {
	roots, err := os.ReadDir(os.TempDir())
	if err != nil {
		log.Warn("sweep run dirs", "error", err)
		return 0, 0
	}
	n := 0
	var next time.Duration
	for _, r := range roots {
		if r.IsDir() && runRootName.MatchString(r.Name()) {
			k, wait := sweepRoot(filepath.Join(os.TempDir(), r.Name()), grace, log)
			n += k
			if wait > 0 && (next == 0 || wait < next) {
				next = wait
			}
		}
	}
	return n, next
}

// sweepRoot sweeps one run root: run dirs whose owner is dead, then dead
// owners' lock files.
func sweepRoot(root string, grace time.Duration, log hclog.Logger) (int, time.Duration) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("sweep run dirs", "root", root, "error", err)
		}
		return 0, 0
	}
	ids := map[string]bool{}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".lock")
		if owner.ValidID(name) || legacyRunDir.MatchString(name) {
			ids[name] = true
		}
	}
	n := 0
	var next time.Duration
	for id := range ids {
		dir := filepath.Join(root, id)
		var wait time.Duration
		dead, err := owner.Reap(root, id, func() error {
			var err error
			wait, err = sweepInstance(root, id, grace, log)
			return err
		})
		switch {
		case errors.Is(err, errKept):
			if next == 0 || wait < next {
				next = wait
			}
		case err != nil:
			log.Warn("sweep run dir of a dead plugin process", "dir", dir, "error", err)
		case dead:
			n++
		}
	}
	if _, err := owner.Sweep(root); err != nil {
		log.Warn("sweep run dir locks", "root", root, "error", err)
	}
	return n, next
}

// sweepInstance kills the VMMs a dead plugin process recorded and removes
// its run dir, except session VMs its live core may still recover: those
// stay until grace has passed since a sweep first kept them (errKept and
// how long is left).
func sweepInstance(root, id string, grace time.Duration, log hclog.Logger) (time.Duration, error) {
	dir := filepath.Join(root, id)
	vms, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, removeMarker(root, id)
	}
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", dir, err)
	}
	var left time.Duration
	if c, ok := readCoreRecord(dir); ok && c.alive() {
		left, err = graceLeft(root, id, grace)
		if err != nil {
			return 0, err
		}
	}
	kept := 0
	for _, v := range vms {
		if !v.IsDir() {
			continue
		}
		vdir := filepath.Join(dir, v.Name())
		if left > 0 && readVMRecord(vdir) != "" {
			kept++
			continue
		}
		log.Info("removing a VM left by a dead plugin process", "vm", v.Name(), "run_dir", dir)
		vmm.Sweep(vdir, vmm.Marker(v.Name()))
	}
	if kept > 0 {
		log.Info("keeping the session VMs of a dead plugin process for its core to recover", "run_dir", dir, "vms", kept, "for", left)
		return left, errKept
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("sweep %s: %w", dir, err)
	}
	return 0, removeMarker(root, id)
}

// graceLeft returns how much of the recovery grace is left for a dead
// owner's session VMs, starting it if no sweep has yet.
func graceLeft(root, id string, grace time.Duration) (time.Duration, error) {
	path := orphanMarker(root, id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		if err := f.Close(); err != nil {
			return 0, fmt.Errorf("recovery grace marker: %w", err)
		}
		return grace, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return 0, fmt.Errorf("recovery grace marker: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("recovery grace marker: %w", err)
	}
	return max(0, grace-time.Since(fi.ModTime())), nil
}

func removeMarker(root, id string) error {
	if err := os.Remove(orphanMarker(root, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recovery grace marker: %w", err)
	}
	return nil
}
