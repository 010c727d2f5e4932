package sandbox

import (
	"context"
	"fmt"

	sdkpool "github.com/mcpruntime/mcpruntime/sdk/pool"
)

// pool keeps started containers whose kernels are ready, so a new session
// costs a few mounts and one round trip to the kernel instead of a
// container start. It refills in the background, one container at a time,
// a moment after each take: creating one (containerd, the shim, crun: tens
// of milliseconds of CPU) alongside the session's claim and first exec
// slowed them (create + first exec, medians of 12, three alternating
// pairs: 3.8-4.1 ms refilling at once, 2.3-3.4 ms after the pool's
// default 50 ms).
type pool struct {
	size  int // Configure compares it to tell a changed pool size
	boxes *sdkpool.Pool[*box]
}

func newPool(e *engine, size int) *pool {
	return &pool{size: size, boxes: sdkpool.New(size, sdkpool.Lifecycle[*box]{
		Create: e.newBox,
		// A kernel's first cell costs ~2 ms more than later ones (first
		// compile and exec paths, the resource module), which the
		// session's set-up would otherwise pay.
		Warm: func(ctx context.Context, b *box) error {
			if err := e.warm(ctx, b); err != nil {
				return fmt.Errorf("warm-up of container %s: %w", b.id, err)
			}
			return nil
		},
		Alive: func(b *box) bool { return b.k != nil && b.k.alive() },
		// destroy outlives the pool's context: it runs uncancelled in
		// the engine's namespace.
		Destroy: func(b *box) { b.destroy(e.ctx) },
	}, sdkpool.WithLogger(e.log.Named("pool")))}
}

// take returns a ready container, or nil when the pool is empty.
func (p *pool) take() *box {
	// Take waits (and uses its context) only for a pool that waits for
	// fills, which this one does not.
	b, pooled, err := p.boxes.Take(context.Background())
	if err != nil || !pooled {
		return nil
	}
	return b
}

// close stops refilling and removes the pooled containers (in the
// engine's namespace, whatever the caller's context).
func (p *pool) close(context.Context) { p.boxes.Close() }
