package backend

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// Each Configure gets a run dir in the state dir, <state>/run-<owner id>:
// the empty directory workers mount and the sessions' import roots. Its
// owner id is claimed in <state>/owners (sdk/owner: a lock file held until
// the run dir is removed, or until the process dies). The sweep, started
// in the background by every Configure, removes the run dirs whose owner
// lock it can take, i.e. those of killed plugins; a live plugin's run dir
// is never touched. A run dir of the scheme before owner ids (run-<digits>,
// from os.MkdirTemp) names no owner: it is removed only if it was last
// changed before the host booted (no process that could use it still
// runs); others are left and logged.

const ownersSubdir = "owners"

var legacyRunDir = regexp.MustCompile(`^run-[0-9]+$`)

// runDir is one Configure's run dir. Sessions hold a reference; it is
// removed once it is retired (a later Configure replaced it, or Close) and
// its last session is gone.
type runDir struct {
	path string
	in   *owner.Instance
	log  hclog.Logger

	mu      sync.Mutex
	refs    int
	retired bool
	removed bool
}

// newRunDir claims an owner id in state and creates its run dir.
func newRunDir(state string, log hclog.Logger) (*runDir, error) {
	in, err := owner.Claim(filepath.Join(state, ownersSubdir))
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(state, "run-"+in.ID)
	if err := os.Mkdir(path, 0o755); err != nil {
		if rerr := in.Release(); rerr != nil {
			log.Warn("release run dir claim", "error", rerr)
		}
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return &runDir{path: path, in: in, log: log}, nil
}

// acquire takes a reference for a session.
func (r *runDir) acquire() {
	r.mu.Lock()
	r.refs++
	r.mu.Unlock()
}

// release drops a session's reference.
func (r *runDir) release() error { return r.update(func() { r.refs-- }) }

// retire marks the run dir as no longer the current one; it goes with its
// last session (now, if it has none).
func (r *runDir) retire() error { return r.update(func() { r.retired = true }) }

// update applies change under the lock, then removes the run dir once it
// is retired and no session uses it (once).
func (r *runDir) update(change func()) error {
	r.mu.Lock()
	change()
	done := r.retired && r.refs == 0 && !r.removed
	if done {
		r.removed = true
	}
	r.mu.Unlock()
	if done {
		return r.remove()
	}
	return nil
}

func (r *runDir) remove() error {
	err := os.RemoveAll(r.path)
	if err != nil {
		err = fmt.Errorf("remove run dir: %w", err)
		r.log.Warn("remove run dir", "dir", r.path, "error", err)
	}
	// Released even if the removal failed: the next sweep then takes it.
	if rerr := r.in.Release(); rerr != nil {
		r.log.Warn("release run dir claim", "dir", r.path, "error", rerr)
		err = errors.Join(err, rerr)
	}
	return err
}

// sweepRunDirs removes the run dirs in state of dead owners, then their
// lock files. It returns the run dirs it removed.
func sweepRunDirs(state string, log hclog.Logger) []string {
	ents, err := os.ReadDir(state)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("sweep run dirs", "error", err)
		}
		return nil
	}
	owners := filepath.Join(state, ownersSubdir)
	var removed []string
	var boot time.Time
	for _, e := range ents {
		name := e.Name()
		dir := filepath.Join(state, name)
		if id, ok := strings.CutPrefix(name, "run-"); ok && owner.ValidID(id) {
			dead, err := owner.Reap(owners, id, func() error {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("remove %s: %w", dir, err)
				}
				return nil
			})
			if err != nil {
				log.Warn("sweep run dir of a dead plugin process", "dir", dir, "error", err)
			} else if dead {
				removed = append(removed, dir)
			}
			continue
		}
		if !e.IsDir() || !legacyRunDir.MatchString(name) {
			continue
		}
		if boot.IsZero() {
			if boot, err = bootTime(); err != nil {
				log.Warn("sweep run dirs: boot time unknown; run dirs without an owner are left", "error", err)
				boot = time.Unix(0, 0)
			}
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if !info.ModTime().Before(boot) {
			log.Info("run dir without an owner id left alone (a plugin from before owner ids may use it; remove it by hand once none runs)", "dir", dir)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove run dir from before the last boot", "dir", dir, "error", err)
			continue
		}
		removed = append(removed, dir)
	}
	if _, err := owner.Sweep(owners); err != nil {
		log.Warn("sweep run dir locks", "error", err)
	}
	return removed
}

// bootTime is when the host booted (btime in /proc/stat).
func bootTime() (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("btime: %w", err)
			}
			return time.Unix(n, 0), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}
