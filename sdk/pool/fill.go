package pool

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// fill is the pool's one filler: it makes items one at a time while the
// pool is short, and otherwise sleeps until nudged (a take, a Rekey), the
// periodic check is due, or Close.
func (p *Pool[T]) fill(ctx context.Context) {
	defer close(p.done)
	var check <-chan time.Time
	if p.set.checkEvery > 0 {
		t := time.NewTicker(p.set.checkEvery)
		defer t.Stop()
		check = t.C
	}
	backoff, failures := p.set.backoffMin, 0
	for {
		if !p.short() {
			if !p.sleep(ctx, check) {
				return
			}
			continue
		}
		handed, err := p.makeOne(ctx)
		if ctx.Err() != nil {
			return // closing: a failure now is the cancellation
		}
		if err != nil {
			failures++
			p.log.Error("warm pool: could not make an item", "error", err, "failures", failures, "retry_in", backoff)
			if !p.set.wait(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, p.set.backoffMax)
			continue
		}
		if failures > 0 {
			p.log.Info("warm pool: making items works again", "after_failures", failures)
		}
		backoff, failures = p.set.backoffMin, 0
		// An item handed to a waiting Take is being set up right now:
		// its replacement waits for the nudge that Take scheduled.
		if handed && !p.sleep(ctx, check) {
			return
		}
	}
}

// sleep waits for a nudge or the periodic check (run here); it reports
// false when the pool is closing.
func (p *Pool[T]) sleep(ctx context.Context, check <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-p.wake:
	case <-check:
		p.dropDead()
	}
	return true
}

// short reports whether the pool wants another item.
func (p *Pool[T]) short() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(p.idle) < p.size
}

// makeOne makes and warms one item and gives it to a waiting Take
// (handed) or to the idle ones.
func (p *Pool[T]) makeOne(ctx context.Context) (handed bool, err error) {
	p.mu.Lock()
	f := &flight[T]{gen: p.gen, awaited: make(chan struct{}), result: make(chan made[T], 1)}
	p.flight = f
	create := p.lc.Create
	p.mu.Unlock()

	start := time.Now()
	item, err := p.make(context.WithValue(ctx, awaitedKey{}, f.awaited), create)

	p.mu.Lock()
	p.flight = nil
	if f.claimed && !f.abandoned {
		f.result <- made[T]{item, err}
		p.mu.Unlock()
		return err == nil, err
	}
	p.mu.Unlock()
	if err != nil {
		return false, err
	}
	p.log.Debug("warm pool: item ready", "took", time.Since(start))
	p.keep(item, f.gen)
	return false, nil
}

func (p *Pool[T]) make(ctx context.Context, create func(context.Context) (T, error)) (T, error) {
	item, err := create(ctx)
	if err != nil {
		return item, fmt.Errorf("create: %w", err)
	}
	if p.lc.Warm != nil {
		if err := p.lc.Warm(ctx, item); err != nil {
			p.lc.Destroy(item)
			var zero T
			return zero, fmt.Errorf("warm: %w", err)
		}
	}
	return item, nil
}

// dropDead destroys the idle items that fail Alive; the filler then
// replaces them.
func (p *Pool[T]) dropDead() {
	if p.lc.Alive == nil {
		return
	}
	p.mu.Lock()
	idle := slices.Clone(p.idle)
	p.mu.Unlock()
	for _, e := range idle {
		if p.lc.Alive(e.item) || !p.remove(e) {
			continue // alive, or taken meanwhile
		}
		p.log.Warn("warm pool: an idle item died; replacing it")
		p.lc.Destroy(e.item)
	}
}

// remove takes e out of the idle items, reporting whether it was there.
func (p *Pool[T]) remove(e *entry[T]) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	p.idle = slices.DeleteFunc(p.idle, func(x *entry[T]) bool { return x == e })
	return len(p.idle) < n
}
