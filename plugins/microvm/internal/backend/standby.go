package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	sdkpool "github.com/mcpruntime/mcpruntime/sdk/pool"
)

// Standby VMs. Under emulation a restore spends most of its time not in
// loading the saved state but in the freshly restored guest running its
// first code, which a new QEMU process must translate again. A standby is
// a VM restored from one of the most recent snapshots ahead of demand and
// warmed with the round trips a restore makes (none of which touches the
// kernel's variables or sees a workspace), so the Restore that takes it
// only reseeds and attaches. Standby VMs live in the run directory like
// pooled ones, so the sweep after a crashed plugin covers them too.
//
// Each recent snapshot has a warm pool of one VM. A Restore that finds
// its standby still being restored waits for it (it started earlier than
// a cold restore would now) and has the rest of its warm-up skipped.

// maxStandby bounds restore_standby: each standby holds a whole VM.
const maxStandby = 16

// standbyRecheck is how often a waiting standby is checked: its VM must
// be alive and its snapshot's files unchanged (the contract has no
// snapshot deletion call).
const standbyRecheck = 10 * time.Second

// errSnapChanged: the snapshot's files were replaced or removed after the
// snapshot was taken.
var errSnapChanged = errors.New("snapshot files changed or were removed since the snapshot was taken")

// standbys keeps one standby VM for each of the limit most recent
// snapshots.
type standbys struct {
	b     *Backend
	limit int

	mu     sync.Mutex
	recent []*standby // newest first, at most limit
	closed bool
	wg     sync.WaitGroup // standbys being closed in the background
}

// standby is the pool of one VM of a snapshot, with the stamp of the
// snapshot's files when it was taken.
type standby struct {
	snap, stamp string
	vms         *sdkpool.Pool[*vm]
}

func newStandbys(b *Backend, limit int) *standbys { return &standbys{b: b, limit: limit} }

// remember makes a snapshot just taken the most recent one and starts its
// standby; snapshots pushed beyond the limit lose theirs.
func (s *standbys) remember(id string) {
	if s.limit == 0 {
		return
	}
	dir, err := s.b.snapDir(id)
	if err != nil {
		return
	}
	st, err := stamp(dir)
	if err != nil {
		s.b.log.Warn("standby: cannot read the snapshot just taken", "snapshot", id, "error", err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var evicted []*standby
	s.recent = slices.DeleteFunc(s.recent, func(sb *standby) bool {
		if sb.snap == id {
			evicted = append(evicted, sb)
		}
		return sb.snap == id
	})
	s.recent = slices.Insert(s.recent, 0, s.newStandby(id, st))
	if len(s.recent) > s.limit {
		evicted = append(evicted, s.recent[s.limit:]...)
		s.recent = s.recent[:s.limit]
	}
	s.mu.Unlock()
	for _, sb := range evicted {
		s.b.log.Debug("standby: dropped for a newer snapshot", "snapshot", sb.snap)
		s.release(sb)
	}
}

// newStandby starts restoring a standby of snapshot id.
func (s *standbys) newStandby(id, st string) *standby {
	sb := &standby{snap: id, stamp: st}
	sb.vms = sdkpool.New(1, sdkpool.Lifecycle[*vm]{
		Create: func(ctx context.Context) (*vm, error) { return s.restore(ctx, sb) },
		Warm: func(ctx context.Context, v *vm) error {
			return s.b.warm(ctx, v, sdkpool.Awaited(ctx))
		},
		Alive:   func(v *vm) bool { return s.usable(sb, v) },
		Destroy: (*vm).destroy,
	}, sdkpool.WithLogger(s.b.log.Named("standby").With("snapshot", id)),
		sdkpool.WithRefillDelay(refillDelay), sdkpool.WithCheckEvery(standbyRecheck), sdkpool.WithWaitForFill())
	return sb
}

// restore loads sb's snapshot into a new VM. A snapshot removed or
// replaced loses its standby.
func (s *standbys) restore(ctx context.Context, sb *standby) (*vm, error) {
	v, err := s.load(ctx, sb)
	if errors.Is(err, errSnapChanged) || errors.Is(err, fs.ErrNotExist) {
		s.b.log.Debug("standby: snapshot removed or replaced; dropping its standby", "snapshot", sb.snap)
		s.drop(sb)
	}
	return v, err
}

func (s *standbys) load(ctx context.Context, sb *standby) (*vm, error) {
	dir, meta, err := s.b.readMeta(sb.snap)
	if err != nil {
		return nil, err
	}
	if cur, err := stamp(dir); err != nil || cur != sb.stamp {
		return nil, errSnapChanged
	}
	return s.b.loadSnapshot(ctx, dir, meta)
}

// usable reports whether a waiting standby VM may be handed out: alive,
// and its snapshot's files unchanged (else the standby is dropped).
func (s *standbys) usable(sb *standby, v *vm) bool {
	if !v.alive() {
		s.b.log.Warn("standby VM died; restores of its snapshot go cold until it is replaced", "snapshot", sb.snap, "vm", v.id, "why", v.m.Describe())
		return false
	}
	dir, err := s.b.snapDir(sb.snap)
	if err == nil {
		var cur string
		if cur, err = stamp(dir); err == nil && cur != sb.stamp {
			err = errSnapChanged
		}
	}
	if err != nil {
		s.b.log.Debug("standby: snapshot removed or replaced; dropping its standby", "snapshot", sb.snap, "error", err)
		s.drop(sb)
		return false
	}
	return true
}

// take hands the standby of snapshot id to a Restore: a ready one, or the
// one in flight, waited for (it started earlier than a cold restore would
// now, and skips what is left of its warm-up). It returns nil (restore
// cold) when there is none, when another Restore took it, when it failed
// or died, or when the snapshot's files changed since it was taken. Its
// pool restores a replacement a moment later.
func (s *standbys) take(ctx context.Context, id string) (*vm, error) {
	s.mu.Lock()
	i := slices.IndexFunc(s.recent, func(sb *standby) bool { return sb.snap == id })
	var sb *standby
	if i >= 0 {
		sb = s.recent[i]
	}
	s.mu.Unlock()
	if sb == nil {
		return nil, nil
	}
	v, ok, err := sb.vms.Take(ctx)
	if err != nil {
		return nil, fmt.Errorf("waiting for the standby VM: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return v, nil
}

// forget stops keeping a standby for a snapshot (removed or replaced).
func (s *standbys) forget(id string) {
	s.mu.Lock()
	var gone []*standby
	s.recent = slices.DeleteFunc(s.recent, func(sb *standby) bool {
		if sb.snap == id {
			gone = append(gone, sb)
		}
		return sb.snap == id
	})
	s.mu.Unlock()
	for _, sb := range gone {
		s.b.log.Debug("standby: snapshot removed or replaced; dropping its standby", "snapshot", id)
		s.release(sb)
	}
}

// drop removes sb, if it is still kept, and frees it.
func (s *standbys) drop(sb *standby) {
	s.mu.Lock()
	n := len(s.recent)
	s.recent = slices.DeleteFunc(s.recent, func(x *standby) bool { return x == sb })
	mine := len(s.recent) < n
	s.mu.Unlock()
	if mine {
		s.release(sb)
	}
}

// release closes a standby no longer kept, in the background: closing
// waits for a restore in flight, and release is called on request paths
// and from the standby's own restore. close waits for it.
func (s *standbys) release(sb *standby) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sb.vms.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		sb.vms.Close()
	}()
}

// ready counts standbys ready to be taken.
func (s *standbys) ready() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sb := range s.recent {
		n += sb.vms.Len()
	}
	return n
}

// close destroys every standby and waits for the restores in flight.
func (s *standbys) close() {
	s.mu.Lock()
	s.closed = true
	all := s.recent
	s.recent = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range all {
		wg.Go(sb.vms.Close)
	}
	wg.Wait()
	s.wg.Wait()
}
