package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// Standby VMs. Under emulation a restore spends most of its time not in
// loading the saved state but in the freshly restored guest running its
// first code, which a new QEMU process must translate again. A standby is
// a VM restored from one of the most recent snapshots ahead of demand and
// warmed with the round trips a restore makes (none of which touches the
// kernel's variables or sees a workspace), so the Restore that takes it
// only reseeds and attaches. Standby VMs live in the run directory like
// pooled ones, so the sweep after a crashed plugin covers them too.

// maxStandby bounds restore_standby: each standby holds a whole VM.
const maxStandby = 16

// standbyRecheck is how often a waiting standby checks that its snapshot
// still exists unchanged (the contract has no snapshot deletion call).
const standbyRecheck = 10 * time.Second

// errSnapChanged: the snapshot's files were replaced or removed after the
// snapshot was taken.
var errSnapChanged = errors.New("snapshot files changed or were removed since the snapshot was taken")

// standbys keeps at most one standby VM for each of the limit most recent
// snapshots.
type standbys struct {
	b      *Backend
	limit  int
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	recent []snapRef           // newest first, at most limit
	slots  map[string]*standby // waiting standbys (in flight or ready) by snapshot id
	closed bool
}

// snapRef is a snapshot that deserves a standby, with the stamp of its
// files when it was taken.
type snapRef struct{ id, stamp string }

// standby is one VM being restored and warmed, or ready to be taken. It
// belongs to its slot until take removes it; v is set, under standbys.mu,
// only while someone still wants it.
type standby struct {
	snap   string
	stamp  string
	cancel context.CancelFunc
	// hurry is closed when a Restore takes the standby while it is still
	// warming: the rest of the warm-up is skipped, since that Restore
	// would pay for it (the session attach cleans up after any step).
	hurry chan struct{}
	ready chan struct{} // closed once prepared (v set, or nil on failure)
	v     *vm
	taken bool
}

func newStandbys(b *Backend, limit int) *standbys {
	ctx, cancel := context.WithCancel(context.Background())
	return &standbys{b: b, limit: limit, ctx: ctx, cancel: cancel, slots: map[string]*standby{}}
}

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
	s.recent = slices.Insert(slices.DeleteFunc(s.recent, func(r snapRef) bool { return r.id == id }), 0, snapRef{id, st})
	var evicted []*standby
	for _, r := range s.recent[min(len(s.recent), s.limit):] {
		if sb := s.slots[r.id]; sb != nil {
			delete(s.slots, r.id)
			evicted = append(evicted, sb)
		}
	}
	s.recent = s.recent[:min(len(s.recent), s.limit)]
	s.mu.Unlock()
	for _, sb := range evicted {
		s.b.log.Debug("standby: dropped for a newer snapshot", "snapshot", sb.snap)
		s.release(sb)
	}
	s.fill(id)
}

// refill gives a recent snapshot a standby again, a moment later: its
// restore takes a whole core under emulation and would slow the first
// execution of the session just restored.
func (s *standbys) refill(id string) {
	time.AfterFunc(refillDelay, func() { s.fill(id) })
}

// fill starts restoring a standby for id, unless it has one, is no longer
// among the recent snapshots, or standbys are closed.
func (s *standbys) fill(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.recent, func(r snapRef) bool { return r.id == id })
	if s.closed || i < 0 || s.slots[id] != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sb := &standby{snap: id, stamp: s.recent[i].stamp, cancel: cancel, hurry: make(chan struct{}), ready: make(chan struct{})}
	s.slots[id] = sb
	s.wg.Add(1)
	go s.prepare(ctx, sb)
}

// prepare restores and warms sb's VM, hands it over if it is still wanted
// (else destroys it), then watches it until it is taken or dropped.
func (s *standbys) prepare(ctx context.Context, sb *standby) {
	defer s.wg.Done()
	start := time.Now()
	v, err := s.restore(ctx, sb)
	s.mu.Lock()
	wanted := s.slots[sb.snap] == sb || sb.taken
	if wanted {
		sb.v = v
	}
	s.mu.Unlock()
	close(sb.ready)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.b.log.Warn("standby: restore failed; restores of this snapshot go cold", "snapshot", sb.snap, "error", err)
		}
		if errors.Is(err, errSnapChanged) || errors.Is(err, fs.ErrNotExist) {
			s.forget(sb.snap)
		} else {
			s.drop(sb)
		}
		return
	case !wanted:
		v.destroy()
		return
	}
	s.b.log.Debug("standby ready", "snapshot", sb.snap, "vm", v.id, "took", time.Since(start))
	s.watch(ctx, sb, v)
}

// restore loads sb's snapshot into a new VM and warms it.
func (s *standbys) restore(ctx context.Context, sb *standby) (*vm, error) {
	dir, meta, err := s.b.readMeta(sb.snap)
	if err != nil {
		return nil, err
	}
	if cur, err := stamp(dir); err != nil || cur != sb.stamp {
		return nil, errSnapChanged
	}
	v, err := s.b.loadSnapshot(ctx, dir, meta)
	if err != nil {
		return nil, err
	}
	if err := s.b.warm(ctx, v, sb.hurry); err != nil {
		v.destroy()
		return nil, err
	}
	return v, nil
}

// watch drops a waiting standby whose VM dies or whose snapshot is
// removed or replaced. It returns once the standby is taken or dropped
// (both cancel ctx).
func (s *standbys) watch(ctx context.Context, sb *standby, v *vm) {
	dir, _ := s.b.snapDir(sb.snap)
	t := time.NewTicker(standbyRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.m.Done():
			s.b.log.Warn("standby VM died; restores of its snapshot go cold until it is replaced", "snapshot", sb.snap, "vm", v.id, "why", v.m.Describe())
			s.drop(sb)
			return
		case <-t.C:
			if cur, err := stamp(dir); err != nil || cur != sb.stamp {
				s.forget(sb.snap)
				return
			}
		}
	}
}

// take hands the standby of snapshot id to a Restore: a ready one, or the
// one in flight, waited for (it started earlier than a cold restore would
// now, and skips what is left of its warm-up). It returns nil (restore cold) when there is none, when another
// Restore took it, when it failed or died, or when the snapshot's files
// changed since it was loaded.
func (s *standbys) take(ctx context.Context, id, dir string) (*vm, error) {
	cur, _ := stamp(dir)
	s.mu.Lock()
	sb := s.slots[id]
	if sb == nil {
		s.mu.Unlock()
		return nil, nil
	}
	if sb.stamp != cur {
		s.mu.Unlock()
		s.b.log.Warn("standby: snapshot files changed since it was taken; restoring cold", "snapshot", id)
		s.forget(id)
		return nil, nil
	}
	delete(s.slots, id)
	sb.taken = true
	s.mu.Unlock()
	close(sb.hurry)
	select {
	case <-sb.ready:
	case <-ctx.Done():
		s.release(sb)
		return nil, fmt.Errorf("waiting for the standby VM: %w", ctx.Err())
	}
	sb.cancel() // stops the watcher: the VM is the caller's now
	switch {
	case sb.v == nil:
		return nil, nil // its restore failed (logged): cold
	case !sb.v.alive():
		s.b.log.Warn("standby VM died; restoring cold", "snapshot", id, "vm", sb.v.id, "why", sb.v.m.Describe())
		sb.v.destroy()
		return nil, nil
	}
	return sb.v, nil
}

// drop removes sb from its slot, if it still holds it, and frees it.
func (s *standbys) drop(sb *standby) {
	s.mu.Lock()
	mine := s.slots[sb.snap] == sb
	if mine {
		delete(s.slots, sb.snap)
	}
	s.mu.Unlock()
	if mine {
		s.release(sb)
	}
}

// forget stops keeping a standby for a snapshot (removed or replaced).
func (s *standbys) forget(id string) {
	s.mu.Lock()
	s.recent = slices.DeleteFunc(s.recent, func(r snapRef) bool { return r.id == id })
	sb := s.slots[id]
	delete(s.slots, id)
	s.mu.Unlock()
	if sb != nil {
		s.b.log.Debug("standby: snapshot removed or replaced; dropping its standby", "snapshot", id)
		s.release(sb)
	}
}

// release frees a standby no longer in its slot: its restore is cancelled
// and its VM destroyed (by prepare, if not handed over yet).
func (s *standbys) release(sb *standby) {
	s.mu.Lock()
	sb.taken = false
	v := sb.v
	sb.v = nil
	s.mu.Unlock()
	sb.cancel()
	if v != nil {
		v.destroy()
	}
}

// ready counts standbys ready to be taken.
func (s *standbys) ready() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sb := range s.slots {
		if sb.v != nil {
			n++
		}
	}
	return n
}

// close destroys every standby and waits for the restores in flight.
func (s *standbys) close() {
	s.mu.Lock()
	s.closed = true
	slots := s.slots
	s.slots, s.recent = map[string]*standby{}, nil
	s.mu.Unlock()
	s.cancel()
	for _, sb := range slots {
		s.release(sb)
	}
	s.wg.Wait()
}
