// Package backend implements the nomad backend: each session is a Nomad
// allocation whose task runs the sdk's Python kernel, reached over the
// allocation's exec stream.
package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Version of the backend.
const Version = "0.1.0"

// Backend is the nomad sdk.Backend.
type Backend struct {
	sdk.NoSnapshots
	log hclog.Logger

	mu       sync.Mutex
	engine   *engine
	settings Settings
	closed   bool

	sessions sdk.Sessions[*session]
}

// New returns an unconfigured backend that logs JSON to stderr.
func New() *Backend {
	level := os.Getenv("MCPRUNTIME_PLUGIN_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	return &Backend{log: hclog.New(&hclog.LoggerOptions{
		Name: "nomad", Output: os.Stderr, JSONFormat: true, Level: hclog.LevelFromString(level),
	})}
}

// Logger is the backend's logger (for plugin.Serve).
func (b *Backend) Logger() hclog.Logger { return b.log }

// Info implements sdk.Backend.
func (b *Backend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name: "nomad", Version: Version, ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "sessions as HashiCorp Nomad allocations (exec driver: chroot, cgroups, no network), warm pool of placed allocations",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationContainer, Languages: []string{"python"},
			// Memory: the allocation's cgroup and RLIMIT_AS. Not pids: the
			// exec driver has no pids cgroup, and RLIMIT_NPROC counts
			// every process of the task user on a node. Not CPU: Nomad's
			// cpu is a share, not a cap.
			EnforcedLimits: []string{sdk.LimitTimeout, sdk.LimitOutput, sdk.LimitMemory},
		},
	}, nil
}

// ConfigSpec implements sdk.Backend.
func (b *Backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) { return configSpec(), nil }

// Configure implements sdk.Backend: it connects to Nomad, sweeps what an
// earlier process of this state directory left and fills the warm pool.
// Configuring again with the same settings keeps the running engine.
func (b *Backend) Configure(ctx context.Context, cfg *sdk.Config) error {
	s, err := decodeSettings(cfg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	old := b.engine
	same := old != nil && fmt.Sprint(b.settings) == fmt.Sprint(s) && old.poolSize == cfg.PoolSize
	closed := b.closed
	b.mu.Unlock()
	if same {
		return nil
	}
	if closed {
		return errors.New("backend is shutting down")
	}
	if old != nil {
		// Sessions keep their allocations; a second engine would sweep
		// them as another instance's.
		return errors.New("the nomad backend is configured already; restart the plugin to change its configuration")
	}
	e, err := newEngine(ctx, s, cfg.StateDir, cfg.PoolSize, b.log)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.engine, b.settings = e, s
	b.mu.Unlock()
	b.log.Info("configured", "address", e.c.Address(), "owner", e.owner, "instance", e.instance, "driver", s.Driver, "pool", cfg.PoolSize)
	return nil
}

func (b *Backend) currentEngine() (*engine, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("backend is shutting down")
	}
	if b.engine == nil {
		return nil, sdk.ErrNotConfigured
	}
	return b.engine, nil
}

// CreateSession implements sdk.Backend.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	e, err := b.currentEngine()
	if err != nil {
		return err
	}
	if err := b.sessions.Reserve(spec.ID); err != nil {
		return err
	}
	s, err := e.open(ctx, spec)
	if err != nil {
		err = fmt.Errorf("session %s: %w", spec.ID, err)
	}
	return b.sessions.Settle(spec.ID, s, err)
}

// open gives a session an allocation and sets its kernel up. The set-up
// round trip overlaps with the reply when the kernel came from the pool
// (see the opensandbox backend for the measurements behind this).
func (e *engine) open(ctx context.Context, spec *sdk.SessionSpec) (*session, error) {
	sb, err := e.acquire(ctx, spec.ID, spec.Limits.MemoryBytes)
	if err != nil {
		return nil, err
	}
	s := e.newSession(spec, sb)
	go func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.Start(sctx); err != nil && !errors.Is(err, sdk.ErrSessionNotFound) {
			e.log.Warn("session set-up failed; the next execution starts a fresh kernel", "session", spec.ID, "error", err)
		}
	}()
	return s, nil
}

// Execute implements sdk.Backend.
func (b *Backend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	return kernel.Execute(ctx, &b.sessions, req, emit)
}

// DestroySession implements sdk.Backend.
func (b *Backend) DestroySession(ctx context.Context, id string) error {
	s, err := b.sessions.Remove(id)
	if err != nil {
		return err
	}
	s.close(ctx)
	return nil
}

// Health implements sdk.Backend.
func (b *Backend) Health(context.Context) (*sdk.Health, error) {
	b.mu.Lock()
	e := b.engine
	b.mu.Unlock()
	n := b.sessions.Len()
	if e == nil {
		return &sdk.Health{Healthy: false, Message: "not configured", Sessions: n}, nil
	}
	if _, err := e.c.Status().Leader(); err != nil {
		return &sdk.Health{Healthy: false, Message: fmt.Sprintf("nomad at %s: %v", e.c.Address(), err), Sessions: n}, nil
	}
	return &sdk.Health{Healthy: true, Sessions: n}, nil
}

// Close destroys every session and pooled allocation: their jobs are
// stopped and purged.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	e := b.engine
	b.mu.Unlock()
	sessions := b.sessions.TakeAll()
	if e != nil {
		// The jobs go first: the rest may be cut short.
		e.purgeNow()
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() { s.close(ctx) })
	}
	wg.Wait()
	if e != nil {
		e.close()
	}
	return nil
}
