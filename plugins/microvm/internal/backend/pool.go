package backend

import (
	"context"
	"time"

	sdkpool "github.com/mcpruntime/mcpruntime/sdk/pool"
)

// refillDelay is how long the pool and the standbys wait after a VM was
// taken before they boot or restore its replacement, instead of the
// shared pool's 50 ms: under emulation a boot or a restore takes a whole
// core for about a second, and the session that took the VM is then
// attaching and running its first execution, code QEMU translates on
// first use for hundreds of milliseconds. Carried over from before the
// shared pool; not re-measured against the default.
const refillDelay = 750 * time.Millisecond

// pool keeps booted VMs (agent answering, kernel started, warmed) ready,
// so a new session's first execution does not pay the boot. It boots one
// VM at a time: under emulation a boot takes a whole core for about a
// second.
type pool struct{ vms *sdkpool.Pool[*vm] }

func newPool(b *Backend, size int) *pool {
	return &pool{vms: sdkpool.New(size, sdkpool.Lifecycle[*vm]{
		Create: b.boot,
		// Under emulation a session's attach would run agent and kernel
		// code no booted VM has run yet, translated on first use: run it
		// now, off the request path (see warm).
		Warm:    func(ctx context.Context, v *vm) error { return b.warm(ctx, v, nil) },
		Alive:   (*vm).alive,
		Destroy: (*vm).destroy,
	}, sdkpool.WithLogger(b.log.Named("pool")), sdkpool.WithRefillDelay(refillDelay))}
}

// get hands out a ready VM, booting one when the pool is empty.
func (p *pool) get(ctx context.Context) (*vm, error) {
	v, _, err := p.vms.Get(ctx)
	return v, err
}

// ready counts the booted VMs waiting.
func (p *pool) ready() int { return p.vms.Len() }

// close stops booting and destroys the waiting VMs.
func (p *pool) close() { p.vms.Close() }
