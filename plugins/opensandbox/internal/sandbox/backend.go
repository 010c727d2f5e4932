// Package sandbox implements the opensandbox backend: sessions are
// containerd containers whose init process is the sdk's Python kernel.
package sandbox

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
	"github.com/mcpruntime/mcpruntime/sdk/owner"
	"github.com/mcpruntime/mcpruntime/sdk/rootfs"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
)

// Version of the backend.
const Version = "0.1.0"

// Backend is the opensandbox sdk.Backend.
type Backend struct {
	log hclog.Logger

	mu       sync.Mutex
	engine   *engine
	settings Settings
	closed   bool
	// inst is the process's owner claim (ownersDir), made at the first
	// Configure and held until Close has removed everything.
	inst *owner.Instance

	sessions sdk.Sessions[*session]
}

// New returns an unconfigured backend that logs JSON to stderr.
func New() *Backend {
	return &Backend{
		log: hclog.New(&hclog.LoggerOptions{
			Name: "opensandbox", Output: os.Stderr, JSONFormat: true,
			Level: hclog.LevelFromString(envOr("MCPRUNTIME_PLUGIN_LOG_LEVEL", "info")),
		}),
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Logger is the backend's logger (for plugin.Serve).
func (b *Backend) Logger() hclog.Logger { return b.log }

// Info implements sdk.Backend.
func (b *Backend) Info(context.Context) (*sdk.Info, error) {
	b.mu.Lock()
	packages := image.DefaultExtraPackages
	if b.engine != nil {
		packages = b.settings.Packages
	}
	b.mu.Unlock()
	return &sdk.Info{
		Name: "opensandbox", Version: Version, ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "containers through containerd (runc), a Python image built from Debian packages, warm pool",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Snapshots: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationContainer, Languages: []string{"python"},
			EnforcedLimits: []string{sdk.LimitTimeout, sdk.LimitOutput, sdk.LimitMemory, sdk.LimitPids}, // cgroup; not CPU: a warm pool's claimed session ran unthrottled
			Libraries:      rootfs.PythonModules(packages),
		},
	}, nil
}

// ConfigSpec implements sdk.Backend.
func (b *Backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) { return configSpec(), nil }

// Configure implements sdk.Backend. It connects to containerd (starting
// the private daemon if allowed), provides the image, sweeps leftovers and
// fills the warm pool. Configuring again with the same settings keeps the
// running engine.
func (b *Backend) Configure(ctx context.Context, cfg *sdk.Config) error {
	s, err := decodeSettings(cfg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	old := b.engine
	same := old != nil && fmt.Sprint(b.settings) == fmt.Sprint(s) && old.pool.size == cfg.PoolSize
	b.mu.Unlock()
	if same {
		return nil
	}
	inst, err := b.claim()
	if err != nil {
		return err
	}
	e, err := newEngine(ctx, s, cfg.StateDir, cfg.PoolSize, inst.ID, b.log)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.engine, b.settings = e, s
	b.mu.Unlock()
	if old != nil {
		// Sessions of the old engine keep it; only its idle containers go.
		old.closeIdle(ctx)
	}
	b.log.Info("configured", "address", s.Address, "namespace", s.Namespace, "image", s.Image, "pool", cfg.PoolSize)
	return nil
}

// claim returns the process's owner claim, making it on first use.
func (b *Backend) claim() (*owner.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("backend is shutting down")
	}
	if b.inst == nil {
		inst, err := owner.Claim(ownersDir)
		if err != nil {
			return nil, err
		}
		b.inst = inst
		b.log.Info("owner id claimed", "owner", inst.ID, "dir", ownersDir)
	}
	return b.inst, nil
}

func (b *Backend) currentEngine() (*engine, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.engine == nil {
		return nil, sdk.ErrNotConfigured
	}
	return b.engine, nil
}

// reserve claims a session id while the session is being created.
func (b *Backend) reserve(id string) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("backend is shutting down")
	}
	return b.sessions.Reserve(id)
}

// CreateSession implements sdk.Backend.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	_, err := b.create(ctx, spec, false)
	return err
}

// create makes a session. With ready, it returns once the session's kernel
// is set up; without, the set-up round trip runs while the reply travels
// (see open).
func (b *Backend) create(ctx context.Context, spec *sdk.SessionSpec, ready bool) (*session, error) {
	e, err := b.currentEngine()
	if err != nil {
		return nil, err
	}
	if err := b.reserve(spec.ID); err != nil {
		return nil, err
	}
	s, err := e.open(ctx, spec, ready)
	if err != nil {
		err = fmt.Errorf("session %s: %w", spec.ID, err)
	}
	return s, b.sessions.Settle(spec.ID, s, err)
}

// open gives a session a container (a warm one when the pool has one, else
// a new one) and its kernel, set up for the session. Unless ready is set,
// the kernel's set-up (one round trip to it) overlaps with the reply to
// CreateSession and the arrival of the first Execute, which waits for it
// on the Session's lock: it started before, almost always; if not, the
// Execute does the set-up itself. A set-up that fails is logged, and the
// first Execute starts a fresh kernel and sets it up (failing with the
// error if that fails too).
func (e *engine) open(ctx context.Context, spec *sdk.SessionSpec, ready bool) (*session, error) {
	bx := e.pool.take()
	if bx == nil {
		var err error
		if bx, err = e.newBox(ctx); err != nil {
			return nil, err
		}
	}
	s, err := e.claim(bx, spec)
	if err != nil {
		bx.destroy(ctx)
		return nil, err
	}
	if !ready {
		go func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := s.Start(sctx); err != nil && !errors.Is(err, sdk.ErrSessionNotFound) {
				e.log.Warn("session set-up failed; the next execution starts a fresh kernel", "session", spec.ID, "error", err)
			}
		}()
		return s, nil
	}
	if err := s.Start(ctx); err != nil {
		s.close(ctx)
		return nil, err
	}
	return s, nil
}

func (b *Backend) get(id string) (*session, error) { return b.sessions.Get(id) }

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
func (b *Backend) Health(ctx context.Context) (*sdk.Health, error) {
	b.mu.Lock()
	e := b.engine
	b.mu.Unlock()
	n := b.sessions.Len()
	if e == nil {
		return &sdk.Health{Healthy: false, Message: "not configured", Sessions: n}, nil
	}
	if _, err := e.client.Version(ctx); err != nil {
		return &sdk.Health{Healthy: false, Message: fmt.Sprintf("containerd at %s: %v", e.s.Address, err), Sessions: n}, nil
	}
	return &sdk.Health{Healthy: true, Sessions: n}, nil
}

// Close destroys every session and pooled container and disconnects.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	e, inst := b.engine, b.inst
	b.inst = nil
	b.mu.Unlock()
	sessions := b.sessions.TakeAll()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.close(ctx)
		}()
	}
	wg.Wait()
	if e != nil {
		e.close(ctx)
	}
	// Last: what is left now (a container that would not go) counts as a
	// dead owner's, for the next plugin's sweep.
	if err := inst.Release(); err != nil {
		b.log.Warn("release owner id", "error", err)
	}
	return nil
}
