package backend

import (
	"context"
	"sync"
	"time"
)

// pool keeps booted VMs (agent answering, kernel started) ready, so a new
// session's first execution does not pay the boot. It boots one VM at a
// time: under emulation a boot takes a whole core for about a second.
type pool struct {
	b    *Backend
	size int

	mu      sync.Mutex
	idle    []*vm
	closed  bool
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}
}

// refillDelay is how long the pool waits before replacing a VM it handed
// out.
const refillDelay = 750 * time.Millisecond

func newPool(b *Backend, size int) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{b: b, size: size, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, stopped: make(chan struct{})}
}

func (p *pool) start() { go p.loop() }

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pool) loop() {
	defer close(p.stopped)
	failures := 0
	for {
		p.mu.Lock()
		need := !p.closed && len(p.idle) < p.size
		p.mu.Unlock()
		if !need {
			select {
			case <-p.wake:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		v, err := p.b.boot(p.ctx)
		if err != nil {
			failures++
			p.b.log.Error("pool: boot failed", "error", err)
			select {
			case <-time.After(time.Duration(min(failures, 30)) * time.Second):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		// Under emulation a session's attach would run agent and kernel
		// code no booted VM has run yet, translated on first use: run it
		// now, off the request path (see warm).
		if err := p.b.warm(p.ctx, v, nil); err != nil {
			v.destroy()
			if p.ctx.Err() != nil {
				return
			}
			failures++
			p.b.log.Error("pool: warming a booted VM failed", "error", err)
			continue
		}
		failures = 0
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			v.destroy()
			return
		}
		p.idle = append(p.idle, v)
		p.mu.Unlock()
	}
}

// get hands out a ready VM, booting one when the pool is empty.
func (p *pool) get(ctx context.Context) (*vm, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		v := p.idle[0]
		p.idle = p.idle[1:]
		if v.alive() {
			p.mu.Unlock()
			// Refill a moment later: a boot takes a whole core under
			// emulation and would slow the session's first execution.
			time.AfterFunc(refillDelay, p.signal)
			return v, nil
		}
		go v.destroy()
	}
	p.mu.Unlock()
	p.signal()
	return p.b.boot(ctx)
}

func (p *pool) ready() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	p.cancel()
	<-p.stopped
	for _, v := range idle {
		v.destroy()
	}
}
