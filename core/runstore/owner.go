package runstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// owner marks this store instance as alive to every process that shares
// the store: it holds an exclusive flock on DIR/ID.lock for its lifetime,
// which the kernel drops however the process ends. A pid check would be
// fooled by pid reuse (a restarted container's server is pid 1 again).
type owner struct {
	dir string
	id  string
	f   *os.File
}

func claimOwner(dir string) (*owner, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run store owners: %w", err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("run store owner id: %w", err)
	}
	o := &owner{dir: dir, id: hex.EncodeToString(b)}
	// Locked under a temporary name, then renamed: nobody can see the file
	// unlocked and take its owner for dead.
	tmp := filepath.Join(dir, o.id+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run store owner: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("run store owner lock: %w", err)
	}
	if err := os.Rename(tmp, o.path(o.id)); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("run store owner: %w", err)
	}
	o.f = f
	return o, nil
}

func (o *owner) path(id string) string { return filepath.Join(o.dir, id+".lock") }

// alive reports whether the instance id still runs. A dead one's lock file
// is removed.
func (o *owner) alive(id string) (bool, error) {
	if id == o.id {
		return true, nil
	}
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return false, nil
	}
	f, err := os.Open(o.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("run store owner %s: %w", id, err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("run store owner %s: %w", id, err)
	}
	// We hold the dead owner's lock: nobody else can be using the file.
	if err := os.Remove(o.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("run store owner %s: %w", id, err)
	}
	return false, nil
}

// others lists the ids of the other instances that left a lock file.
func (o *owner) others() ([]string, error) {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("run store owners: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".lock"); ok && id != o.id {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (o *owner) release() error {
	if o.f == nil {
		return nil
	}
	err := os.Remove(o.path(o.id))
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	if err != nil {
		return fmt.Errorf("run store owner release: %w", err)
	}
	return nil
}
