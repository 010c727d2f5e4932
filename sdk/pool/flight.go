package pool

import (
	"context"
	"fmt"
)

// flight is the item the filler is making. A Take that finds the pool
// empty may claim it (WithWaitForFill): the filler then hands the item to
// that Take instead of keeping it.
type flight[T any] struct {
	gen uint64
	// awaited is closed when a Take claims the flight; the maker sees it
	// through Awaited.
	awaited chan struct{}
	// claimed and abandoned are guarded by the pool's mu. A claimed flight
	// whose Take gave up (its context ended) goes to the pool as usual.
	claimed, abandoned bool
	// result carries the made item, or why it could not be made, to the
	// Take that claimed the flight. Buffered: the filler never blocks.
	result chan made[T]
}

type made[T any] struct {
	item T
	err  error
}

type awaitedKey struct{}

// Awaited returns a channel that is closed once a Take waits for the item
// being made with ctx (see WithWaitForFill). A Warm step may check it
// between steps and return early, handing over an item that is usable
// but less warmed: the waiting caller would otherwise pay for the rest.
// Outside a pool's making, or without WithWaitForFill, the channel is
// nil and never ready.
func Awaited(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(awaitedKey{}).(chan struct{})
	return ch
}

// claimFlight claims the item being made for a Take, if the pool waits
// for fills and it is free and of the current generation. p.mu is held.
func (p *Pool[T]) claimFlight() *flight[T] {
	f := p.flight
	if !p.set.waitForFill || f == nil || f.claimed || f.gen != p.gen {
		return nil
	}
	f.claimed = true
	close(f.awaited)
	return f
}

// await waits for a claimed flight. A failed making means no item (the
// filler logged why): the caller makes its own.
func (p *Pool[T]) await(ctx context.Context, f *flight[T]) (item T, pooled bool, err error) {
	select {
	case m := <-f.result:
		if m.err != nil {
			return item, false, nil
		}
		return m.item, true, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	f.abandoned = true
	p.mu.Unlock()
	// The filler may have handed the item over just before: keep it.
	select {
	case m := <-f.result:
		if m.err == nil {
			p.keep(m.item, f.gen)
		}
	default:
	}
	return item, false, fmt.Errorf("waiting for a pooled item: %w", ctx.Err())
}

// keep adds a made item to the idle ones if the pool wants it, else
// destroys it.
func (p *Pool[T]) keep(item T, gen uint64) {
	p.mu.Lock()
	ok := !p.closed && gen == p.gen && len(p.idle) < p.size
	if ok {
		p.idle = append(p.idle, &entry[T]{item})
	}
	p.mu.Unlock()
	if !ok {
		p.lc.Destroy(item)
	}
}
