//go:build unix

// Package owner names the owner of what a plugin process leaves on the
// host (containers, directories, processes), so that a later process can
// tell a dead owner's leftovers from a live one's resources without
// guessing from PIDs, which the kernel reuses.
//
// An instance claims an id in an owners directory: the file <id>.lock,
// locked with flock(LOCK_EX) for as long as the claim lasts. The kernel
// drops the lock when the process ends, however it ends (SIGKILL
// included), and only then: the lock itself is the liveness proof. Every
// resource the instance creates carries its id (in a name, a label, a
// file). A sweeper finding a resource asks Reap about its id: an id whose
// lock can be taken, or whose lock file is gone, belongs to a dead owner.
//
// Ids look like "<pid>-<12 lowercase letters>": the pid only helps a
// person reading a listing; liveness is never decided from it.
package owner

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Instance is a held claim.
type Instance struct {
	// ID names the instance's resources.
	ID  string
	dir string
	f   *os.File
}

var idPattern = regexp.MustCompile(`^[0-9]+-[a-z]{12}$`)

// ValidID reports whether s has the form of an id Claim hands out.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// safeName accepts the ids Reap may be asked about: Claim's and names of
// older schemes that a plugin still sweeps (no path separators, no dot
// files, nothing ending in the lock suffix).
func safeName(s string) bool {
	if s == "" || s[0] == '.' || strings.ContainsAny(s, "/\x00") || strings.HasSuffix(s, lockSuffix) {
		return false
	}
	return true
}

const (
	lockSuffix  = ".lock"
	claimSuffix = ".claim"
)

// LockPath is the lock file of id in dir.
func LockPath(dir, id string) string { return filepath.Join(dir, id+lockSuffix) }

// Claim creates a new id in dir and holds its lock until Release or the
// end of the process. The lock file is locked before it appears under its
// name, so a sweeper never sees a live claim unlocked.
func Claim(dir string) (*Instance, error) {
	var last error
	for range 5 {
		// Again on each try: a plugin shutting down may remove an owners
		// directory it found empty.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("owners dir: %w", err)
		}
		in, err := claimOnce(dir)
		if err == nil {
			return in, nil
		}
		last = err
	}
	return nil, last
}

func claimOnce(dir string) (*Instance, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "."+id+claimSuffix)
	// Go opens files close-on-exec: children (a daemon, a VMM, workers)
	// never inherit the lock, so it ends with this process.
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("claim owner id: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		// A sweeper took the fresh file for a dead claim's: start over.
		f.Close()
		return nil, fmt.Errorf("claim owner id: lock %s: %w", tmp, err)
	}
	start, _ := StartTime(os.Getpid())
	exe, _ := os.Executable()
	if _, err := fmt.Fprintf(f, "pid %d\nstart %s\nexe %s\n", os.Getpid(), start, exe); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("claim owner id: %w", err)
	}
	if err := os.Rename(tmp, LockPath(dir, id)); err != nil {
		// A sweeper removed the unlocked file between create and flock.
		f.Close()
		return nil, fmt.Errorf("claim owner id: %w", err)
	}
	return &Instance{ID: id, dir: dir, f: f}, nil
}

// Dir is the owners directory of the claim.
func (in *Instance) Dir() string { return in.dir }

// Release ends the claim: the lock file goes, then the lock. Call it only
// once everything the instance created is gone; what is left afterwards
// counts as a dead owner's.
func (in *Instance) Release() error {
	if in == nil || in.f == nil {
		return nil
	}
	err := os.Remove(LockPath(in.dir, in.ID))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := in.f.Close(); err == nil {
		err = cerr
	}
	in.f = nil
	if err != nil {
		return fmt.Errorf("release owner %s: %w", in.ID, err)
	}
	return nil
}

// Reap runs fn if id's owner is dead, holding the owner's lock meanwhile
// so that two sweepers do not clean the same leftovers at once, and
// removes the lock file when fn succeeds. It reports whether the owner was
// dead; it returns false without calling fn when the owner lives (or
// another sweeper is reaping it right now). fn may be nil.
func Reap(dir, id string, fn func() error) (bool, error) {
	if !safeName(id) {
		return false, fmt.Errorf("reap owner %q: not an owner id", id)
	}
	path := LockPath(dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// Gone: the owner released it, or died and was reaped before its
		// leftovers were all removed. Take it over to serialise sweepers.
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if errors.Is(err, os.ErrExist) {
			return false, nil // another sweeper just did
		}
	}
	if err != nil {
		return false, fmt.Errorf("reap owner %s: %w", id, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("reap owner %s: lock: %w", id, err)
	}
	if fn != nil {
		if err := fn(); err != nil {
			return true, err // the lock file stays: a later sweep retries
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, fmt.Errorf("reap owner %s: %w", id, err)
	}
	return true, nil
}

// Alive reports whether id's owner holds its lock now.
func Alive(dir, id string) bool {
	f, err := os.Open(LockPath(dir, id))
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// claimGrace is how long a claim file may stay unlocked before a sweep
// takes it for a dead claimant's.
const claimGrace = 10 * time.Second

// Sweep removes the lock files of dead owners in dir, and claims that died
// before they were published. Call it after the resources of dead owners
// were removed (ids without a lock file count as dead anyway). It returns
// the ids of the dead owners it removed.
func Sweep(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep owners: %w", err)
	}
	var dead []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, lockSuffix); ok && safeName(id) {
			ok, err := Reap(dir, id, nil)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				dead = append(dead, id)
			}
			continue
		}
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, claimSuffix) {
			// A claim is unlocked for a moment between its create and its
			// flock: only one that stayed unlocked past claimGrace is a
			// dead claimant's (removing a fresh one made Claim retry, and
			// under a busy sweeper fail).
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < claimGrace {
				continue
			}
			if err := removeIfUnlocked(filepath.Join(dir, name)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return dead, errors.Join(errs...)
}

func removeIfUnlocked(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sweep owners: %w", err)
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sweep owners: %w", err)
	}
	return nil
}

// Find returns the id of the live instance in dir claimed by process pid
// (for tests and diagnostics: it reads the pid the lock file records).
func Find(dir string, pid int) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("find owner of pid %d: %w", pid, err)
	}
	want := "pid " + strconv.Itoa(pid) + "\n"
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), lockSuffix)
		if !ok || !safeName(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(string(b), want) && Alive(dir, id) {
			return id, nil
		}
	}
	return "", fmt.Errorf("find owner of pid %d: no live claim in %s", pid, dir)
}

// StartTime is field 22 of /proc/PID/stat: with the pid, it names a
// process across pid reuse.
func StartTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return f[19], nil
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("owner id: %w", err)
	}
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return strconv.Itoa(os.Getpid()) + "-" + string(b), nil
}
