// Package sessionreg is the persistent registry of the sessions one
// serving process (the workspace's session daemon, or `mcpruntime serve`)
// keeps: a small JSON file per session in the state dir, written whole
// (internal/atomicfile), so the next process of the same kind knows every
// session the previous one had, whether it ended gracefully (its sessions
// were hibernated) or was killed (they were live when it died).
//
// One process owns a registry at a time: Open takes an exclusive lock on
// the registry directory, which the kernel drops when the process ends,
// however it ends.
package sessionreg

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/core/internal/atomicfile"
)

// States of a recorded session.
const (
	// StateLive: the session's sandbox ran in a plugin of the process that
	// wrote the record. Found by a new process, the previous one died
	// without hibernating it: its plugin may recover it (RecoverSessions),
	// otherwise its variables are lost.
	StateLive = "live"
	// StateHibernated: the session was checkpointed (Checkpoint) when its
	// process stopped gracefully; its next execution restores it.
	StateHibernated = "hibernated"
	// StateLost: the session's variables could not be kept (a failed
	// checkpoint, say); Reason says why. Its next execution creates it
	// again and reports state_lost.
	StateLost = "lost"
)

// Record is what the registry keeps of one session.
type Record struct {
	ID        string    `json:"id"`
	Backend   string    `json:"backend"`
	Workspace string    `json:"workspace"`
	Created   time.Time `json:"created"`
	Execs     int       `json:"execs"`
	State     string    `json:"state"`
	// Reason says why a session is StateLost.
	Reason     string      `json:"reason,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Updated    time.Time   `json:"updated"`
}

// Checkpoint is the saved state of a hibernated session.
type Checkpoint struct {
	Taken time.Time `json:"taken"`
	// Why names the stop that hibernated the session (idle exit, shutdown).
	Why string `json:"why,omitempty"`
	// Snapshot is the backend snapshot holding the sandbox's whole state,
	// on a backend with the snapshots capability.
	Snapshot string `json:"snapshot,omitempty"`
	// State is the pickle of the session's variables (relative to the
	// workspace) when no backend snapshot was taken.
	State string `json:"state,omitempty"`
	// Saved are the variables the pickle holds; NotCarried those it could
	// not hold, with why (unpicklable values).
	Saved      []string          `json:"saved,omitempty"`
	NotCarried map[string]string `json:"not_carried,omitempty"`
	// WorkspaceSnapshot is the replay store's snapshot of the workspace
	// files at hibernation (the files stay where they are; this records
	// them).
	WorkspaceSnapshot string `json:"workspace_snapshot,omitempty"`
}

// ErrBusy is returned by Open when another live process owns the registry.
var ErrBusy = errors.New("another process owns this session registry")

// Registry is an open registry directory.
type Registry struct {
	dir  string
	lock *os.File

	// wmu orders the writes of records: a background write of an exec
	// count never lands after, and undoes, a newer Put or Delete.
	wmu     sync.Mutex
	mu      sync.Mutex
	pending map[string]int // id -> exec count not yet written
	recs    map[string]*Record
	kick    chan struct{}
	done    chan struct{}
	closed  bool
	// flushErr is the last error of a background write, for Close.
	flushErr error
}

// Open opens (creating) the registry in dir and takes its lock.
func Open(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session registry: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("session registry: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("session registry %s: %w", dir, ErrBusy)
		}
		return nil, fmt.Errorf("session registry %s: lock: %w", dir, err)
	}
	r := &Registry{dir: dir, lock: f, pending: map[string]int{}, recs: map[string]*Record{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go r.flusher()
	return r, nil
}

// Dir is the registry's directory.
func (r *Registry) Dir() string { return r.dir }

func (r *Registry) path(id string) string { return filepath.Join(r.dir, id+".json") }

// Load reads every record, oldest first. A record that cannot be read is
// reported in the error and skipped (and kept on disk for a person to
// look at).
func (r *Registry) Load() ([]*Record, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("session registry: %w", err)
	}
	var out []*Record
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("session registry: %w", err))
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil || rec.ID != id {
			errs = append(errs, fmt.Errorf("session registry: %s is not a record of session %s (%v)", e.Name(), id, err))
			continue
		}
		out = append(out, &rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	r.mu.Lock()
	for _, rec := range out {
		c := *rec
		r.recs[rec.ID] = &c
	}
	r.mu.Unlock()
	return out, errors.Join(errs...)
}

// Put writes rec whole, now (it replaces the session's record).
func (r *Registry) Put(rec Record) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	rec.Updated = time.Now().UTC()
	r.mu.Lock()
	delete(r.pending, rec.ID)
	c := rec
	r.recs[rec.ID] = &c
	r.mu.Unlock()
	return r.write(&rec)
}

func (r *Registry) write(rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("session registry: %w", err)
	}
	if err := atomicfile.WriteBytes(r.path(rec.ID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("session registry: %w", err)
	}
	return nil
}

// Execs records a session's exec count. The first execution is written
// at once (from then on the session has state to lose, and a process
// that dies right after must leave that known); later counts are written
// in the background, coalesced: a count is informative, not worth a
// synced write per execution. It reports a failed write of the first.
func (r *Registry) Execs(id string, n int) error {
	r.mu.Lock()
	rec := r.recs[id]
	if r.closed || rec == nil {
		r.mu.Unlock()
		return nil
	}
	if rec.Execs == 0 && n > 0 {
		r.mu.Unlock()
		r.wmu.Lock()
		defer r.wmu.Unlock()
		r.mu.Lock()
		rec = r.recs[id]
		if rec == nil { // deleted meanwhile
			r.mu.Unlock()
			return nil
		}
		rec.Execs, rec.Updated = n, time.Now().UTC()
		c := *rec
		r.mu.Unlock()
		return r.write(&c)
	}
	defer r.mu.Unlock()
	r.pending[id] = n
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

// flushDelay coalesces the exec-count writes of a busy session.
const flushDelay = 500 * time.Millisecond

func (r *Registry) flusher() {
	defer close(r.done)
	for range r.kick {
		time.Sleep(flushDelay)
		r.flush()
	}
}

// flush writes the pending exec counts.
func (r *Registry) flush() {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	var recs []Record
	for id, n := range r.pending {
		if rec := r.recs[id]; rec != nil {
			rec.Execs, rec.Updated = n, time.Now().UTC()
			recs = append(recs, *rec)
		}
	}
	r.pending = map[string]int{}
	r.mu.Unlock()
	for i := range recs {
		if err := r.write(&recs[i]); err != nil {
			r.mu.Lock()
			r.flushErr = err
			r.mu.Unlock()
		}
	}
}

// Delete removes a session's record (the session was closed).
func (r *Registry) Delete(id string) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	delete(r.pending, id)
	delete(r.recs, id)
	r.mu.Unlock()
	if err := os.Remove(r.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("session registry: %w", err)
	}
	return nil
}

// Close writes what is pending and releases the lock.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.kick)
	r.mu.Unlock()
	<-r.done
	r.flush()
	r.mu.Lock()
	err := r.flushErr
	r.mu.Unlock()
	if cerr := r.lock.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("session registry: %w", cerr)
	}
	return err
}
