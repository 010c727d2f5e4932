package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	sdkpool "github.com/mcpruntime/mcpruntime/sdk/pool"
)

// startTimeout bounds a pooled worker's start and its warm-up each: a
// worker that hangs must not hold the pool's one filler for ever.
const startTimeout = 2 * time.Minute

// pool keeps workers started ahead of demand: Python initialised, the
// kernel ready and the common stdlib imported, but not yet bound to a
// workspace.
//
// A worker's memory cap is fixed when its instance is created, so the pool
// holds workers for one cap: the one the last session asked for (the core
// gives every session of a backend the same limits, so this settles at
// once). A session with another cap re-keys the pool and gets a freshly
// started worker.
type pool struct {
	l      *launcher
	logger hclog.Logger
	warm   *sdkpool.Pool[*proc]

	// mu makes a re-key and the take after it one step: a session must
	// never get a worker with another session's cap.
	mu     sync.Mutex
	memory int64
}

func newPool(l *launcher, size int, memory int64, logger hclog.Logger) *pool {
	p := &pool{l: l, logger: logger, memory: memory}
	p.warm = sdkpool.New(size, sdkpool.Lifecycle[*proc]{
		Create: p.starter(memory),
		Warm: func(ctx context.Context, w *proc) error {
			ctx, cancel := context.WithTimeout(ctx, startTimeout)
			defer cancel()
			return l.warm(ctx, w)
		},
		Alive:   (*proc).alive,
		Destroy: (*proc).stop,
	}, sdkpool.WithLogger(logger.Named("pool")))
	return p
}

// starter starts pooled workers with the given memory cap.
func (p *pool) starter(memory int64) func(context.Context) (*proc, error) {
	return func(ctx context.Context) (*proc, error) {
		ctx, cancel := context.WithTimeout(ctx, startTimeout)
		defer cancel()
		return p.l.start(ctx, memory)
	}
}

// get returns a ready worker with the given memory cap, from the pool when
// it has one (fromPool), else freshly started.
func (p *pool) get(ctx context.Context, memory int64) (w *proc, fromPool bool, err error) {
	p.mu.Lock()
	if memory != p.memory && p.warm.Size() > 0 {
		p.memory = memory
		p.warm.Rekey(p.starter(memory))
	}
	w, fromPool, err = p.warm.Take(ctx)
	p.mu.Unlock()
	if err != nil || fromPool {
		return w, fromPool, err
	}
	w, err = p.l.start(ctx, memory)
	return w, false, err
}

// ready reports how many warm workers are waiting, and the target.
func (p *pool) ready() (int, int) { return p.warm.Len(), p.warm.Size() }

// close stops the filler and every idle worker.
func (p *pool) close() { p.warm.Close() }
