// Package pool keeps items that are slow to make (worker processes,
// containers, virtual machines) made ahead of demand, so that a caller
// takes a ready one instead of waiting for one to be made.
//
// One background filler makes the items, one at a time and a moment after
// each take: making an item costs a core for tens of milliseconds to
// seconds, and a pool refilling several at once, or at the very moment a
// caller sets up the item it took, competes with the sessions it serves.
package pool

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Lifecycle says how a pool makes, checks and disposes of its items.
type Lifecycle[T any] struct {
	// Create makes an item. Required. The filler calls it with a context
	// that ends when the pool is closed; Get calls it with its caller's.
	Create func(ctx context.Context) (T, error)
	// Warm, if set, prepares an item the filler made (Get's direct
	// creations skip it: warming only hides latency the caller would pay
	// anyway). On error the pool destroys the item.
	Warm func(ctx context.Context, item T) error
	// Alive, if set, reports whether an idle item is still usable; dead
	// ones are destroyed instead of handed out. It is called without the
	// pool's lock held, so it may take a moment (a stat, a channel check).
	Alive func(item T) bool
	// Destroy disposes of an item nobody will take. Required.
	Destroy func(item T)
}

// Pool keeps up to a fixed number of items ready. It is safe for
// concurrent use.
type Pool[T any] struct {
	size int
	lc   Lifecycle[T] // lc.Create is replaced by Rekey, under mu
	set  settings
	log  hclog.Logger

	mu     sync.Mutex
	idle   []*entry[T] // oldest first
	gen    uint64      // bumped by Rekey: items made for an older one are stale
	flight *flight[T]  // the item the filler is making, if any
	closed bool

	wake      chan struct{} // a buffered nudge to the filler
	cancel    context.CancelFunc
	done      chan struct{}  // closed when the filler has returned
	bg        sync.WaitGroup // destroys running in the background
	closeOnce sync.Once
}

// New returns a pool that keeps size items ready and starts filling it at
// once. A size of 0 or less means no pool: nothing is made ahead, Take
// finds nothing and Get creates directly. New panics if lc lacks Create
// or Destroy.
func New[T any](size int, lc Lifecycle[T], opts ...Option) *Pool[T] {
	if lc.Create == nil || lc.Destroy == nil {
		panic("pool.New: Lifecycle needs Create and Destroy")
	}
	set := defaults()
	for _, o := range opts {
		o(&set)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[T]{size: max(size, 0), lc: lc, set: set, log: set.logger,
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	if p.size == 0 {
		close(p.done)
		return p
	}
	go p.fill(ctx)
	return p
}

// Take hands out an idle item (pooled true), dropping dead ones on the
// way, and schedules its replacement. With WithWaitForFill it waits, when
// none is idle, for the one being made. Otherwise it returns pooled false
// and a zero item; err is set only when ctx ended while it waited.
func (p *Pool[T]) Take(ctx context.Context) (item T, pooled bool, err error) {
	defer p.refillLater()
	for {
		p.mu.Lock()
		if len(p.idle) == 0 {
			f := p.claimFlight()
			p.mu.Unlock()
			if f == nil {
				return item, false, nil
			}
			return p.await(ctx, f)
		}
		item = p.idle[0].item
		p.idle[0] = nil // let a destroyed item be collected
		p.idle = p.idle[1:]
		p.mu.Unlock()
		if p.alive(item) {
			return item, true, nil
		}
		p.log.Warn("warm pool: an idle item was dead; dropped it")
		p.discard(item)
	}
}

// Get hands out an item: a pooled one as Take does, else one made at once
// with ctx (not warmed). The error is Create's, as it returned it.
func (p *Pool[T]) Get(ctx context.Context) (item T, pooled bool, err error) {
	if item, pooled, err = p.Take(ctx); err != nil || pooled {
		return item, pooled, err
	}
	p.mu.Lock()
	create := p.lc.Create
	p.mu.Unlock()
	item, err = create(ctx)
	return item, false, err
}

// Rekey makes create the way items are made from now on (for instance
// with another memory cap) and destroys the idle items made the old way;
// the one being made the old way is destroyed when it is done. A caller
// that must not get an old item calls Rekey and Take under a lock of its
// own, so that no other Rekey comes between them.
func (p *Pool[T]) Rekey(create func(ctx context.Context) (T, error)) {
	p.mu.Lock()
	p.lc.Create = create
	p.gen++
	stale := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, e := range stale {
		p.discard(e.item)
	}
	p.refillLater()
}

// Len reports how many items are idle and ready.
func (p *Pool[T]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Size reports how many items the pool keeps ready (0: no pool).
func (p *Pool[T]) Size() int { return p.size }

// Close stops the filler, waits for it (an item it was making is
// destroyed), destroys the idle items and waits for every destroy the
// pool started. A closed pool makes nothing ahead any more, but Get still
// creates directly: a caller that raced Close still gets an item. Close
// may be called more than once.
func (p *Pool[T]) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		idle := p.idle
		p.idle = nil
		p.mu.Unlock()
		p.cancel()
		// The idle items go while the filler winds down: destroying a VM
		// or a container takes a while, and so may a cancelled make.
		var wg sync.WaitGroup
		for _, e := range idle {
			wg.Go(func() { p.lc.Destroy(e.item) })
		}
		<-p.done
		wg.Wait()
		p.bg.Wait()
	})
}

// entry holds an idle item; the periodic check finds it again by its
// address (T need not be comparable).
type entry[T any] struct{ item T }

func (p *Pool[T]) alive(item T) bool { return p.lc.Alive == nil || p.lc.Alive(item) }

// discard destroys an item in the background, or at once when the pool is
// closed (Close may be waiting for the background ones already).
func (p *Pool[T]) discard(item T) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.lc.Destroy(item)
		return
	}
	p.bg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.bg.Done()
		p.lc.Destroy(item)
	}()
}

// refillLater nudges the filler after the refill delay (see
// DefaultRefillDelay for why not at once).
func (p *Pool[T]) refillLater() {
	if p.size == 0 {
		return
	}
	if p.set.refillDelay == 0 {
		p.signal()
		return
	}
	time.AfterFunc(p.set.refillDelay, p.signal)
}

func (p *Pool[T]) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}
