package backend

import (
	"context"
	"time"
)

// BootTiming is how long a cold boot took.
type BootTiming struct {
	// AgentReady: VMM start to the guest agent's first answer.
	AgentReady time.Duration
	// KernelReady: VMM start to a Python kernel ready for code.
	KernelReady time.Duration
}

// MeasureBoot boots a throw-away VM the way the pool does and reports its
// timings (benchmarks, diagnostics).
func (b *Backend) MeasureBoot(ctx context.Context) (*BootTiming, error) {
	if _, err := b.configured(); err != nil {
		return nil, err
	}
	start := time.Now()
	id := newID()
	spec := b.vmSpec(id)
	m, err := b.driver.Launch(ctx, spec)
	if err != nil {
		return nil, err
	}
	v := &vm{id: id, dir: spec.Dir, m: m, agent: newAgentClient(m.Agent())}
	defer v.destroy()
	if err := v.waitAgent(ctx); err != nil {
		return nil, err
	}
	t := &BootTiming{AgentReady: time.Since(start)}
	if err := v.startKernel(ctx); err != nil {
		return nil, err
	}
	t.KernelReady = time.Since(start)
	return t, nil
}

// Accel names the accelerator in use ("kvm" or "tcg").
func (b *Backend) Accel() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accel
}

// PoolReady is how many booted VMs wait in the pool.
func (b *Backend) PoolReady() int {
	p, err := b.configured()
	if err != nil {
		return 0
	}
	return p.ready()
}

// StandbyReady is how many restore standby VMs are ready to be taken.
func (b *Backend) StandbyReady() int {
	st := b.standbys()
	if st == nil {
		return 0
	}
	return st.ready()
}
