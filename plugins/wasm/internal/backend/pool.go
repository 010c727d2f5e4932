package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pool keeps workers started ahead of demand: Python initialised, the
// kernel ready and the common stdlib imported, but not yet bound to a
// workspace. One background filler refills it, one worker at a time so
// refilling never competes with running sessions for more than one core.
//
// A worker's memory cap is fixed when its instance is created, so the pool
// holds workers for one cap: the one the last session asked for (the core
// gives every session of a backend the same limits, so this settles at
// once). A session with another cap gets a freshly started worker.
type pool struct {
	l      *launcher
	size   int
	logger hclog.Logger

	mu     sync.Mutex
	idle   []*proc
	memory int64

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newPool(l *launcher, size int, memory int64, logger hclog.Logger) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pool{l: l, size: size, memory: memory, logger: logger, wake: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go p.fill()
	p.signal()
	return p
}

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// get returns a ready worker with the given memory cap, from the pool when
// it has one (fromPool), else freshly started.
func (p *pool) get(ctx context.Context, memory int64) (w *proc, fromPool bool, err error) {
	p.mu.Lock()
	var stale []*proc
	if memory != p.memory && p.size > 0 {
		stale, p.idle, p.memory = p.idle, nil, memory
	}
	for len(p.idle) > 0 && w == nil {
		c := p.idle[0]
		p.idle = p.idle[1:]
		if c.alive() {
			w = c
		}
	}
	p.mu.Unlock()
	// The replacement starts a moment later: a new worker (wazero loading
	// the compiled module, Python starting) is ~200 ms of CPU, and doing it
	// alongside the session's binding and first exec slowed them.
	time.AfterFunc(refillDelay, p.signal)
	for _, s := range stale {
		go s.stop()
	}
	if w != nil {
		return w, true, nil
	}
	w, err = p.l.start(ctx, memory)
	return w, false, err
}

func (p *pool) fill() {
	defer close(p.done)
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			need := len(p.idle) < p.size
			memory := p.memory
			p.mu.Unlock()
			if !need || p.ctx.Err() != nil {
				break
			}
			w, err := p.startWarm(memory)
			if err != nil {
				if p.ctx.Err() != nil {
					break // shutting down: the start was cancelled, not failed
				}
				p.logger.Error("warm pool: start kernel", "error", err)
				select { // do not spin on a broken installation
				case <-p.ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
				continue
			}
			p.mu.Lock()
			keep := memory == p.memory && p.ctx.Err() == nil
			if keep {
				p.idle = append(p.idle, w)
			}
			p.mu.Unlock()
			if !keep {
				w.stop()
			}
		}
	}
}

// refillDelay is how long the filler waits after a take before it starts a
// replacement worker. Measured (bench NewSessionFromPool, three alternating
// pairs): create / first exec 2.1-2.9 / 2.2-2.3 ms refilling at once,
// 1.8-2.0 / 1.6-1.9 ms after 50 ms.
const refillDelay = 50 * time.Millisecond

func (p *pool) startWarm(memory int64) (*proc, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	w, err := p.l.start(ctx, memory)
	if err != nil {
		return nil, err
	}
	if err := p.l.warm(ctx, w); err != nil {
		w.kill()
		return nil, err
	}
	p.logger.Debug("warm pool: kernel ready", "pid", w.cmd.Process.Pid, "took", time.Since(start))
	return w, nil
}

// ready reports how many warm workers are waiting, and the target.
func (p *pool) ready() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.size
}

// close stops the filler and every idle worker.
func (p *pool) close() {
	p.cancel()
	<-p.done
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop() }()
	}
	wg.Wait()
}
