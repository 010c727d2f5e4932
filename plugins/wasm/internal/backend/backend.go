// Package backend implements sdk.Backend for CPython-for-WASI in wazero.
//
// Every kernel runs in a worker process (the plugin binary in worker mode)
// hosting one wazero instance; its stdin/stdout carry the kernel channel.
// Timeouts kill the worker, which stops even pure-Python loops without the
// slowdown of in-process cancellation. A warm pool hides interpreter
// start-up from new sessions.
package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/artefacts"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
)

// Version is the plugin's version.
const Version = "0.1.0"

// WarmImports are imported by pooled kernels before a session gets them.
var WarmImports = []string{
	"json", "re", "collections", "math", "datetime", "decimal", "statistics", "hashlib",
	"itertools", "functools", "random", "string", "textwrap", "pathlib", "csv", "base64",
	"dataclasses", "typing",
}

// Backend is the wasm sandbox backend.
type Backend struct {
	sdk.NoSnapshots

	logger hclog.Logger

	mu     sync.Mutex
	pool   *pool
	tmp    string
	memory int64

	sessions sdk.Sessions[*session]
}

// New returns an unconfigured backend.
func New(logger hclog.Logger) *Backend {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Backend{logger: logger}
}

// Info implements sdk.Backend.
func (b *Backend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name: "wasm", Version: Version, ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "CPython " + artefacts.PythonVersion + " compiled to WASI, run by wazero; no daemon, no network",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationWasm, Languages: []string{"python"},
		},
	}, nil
}

// ConfigSpec implements sdk.Backend.
func (b *Backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) { return configSpec(), nil }

// Configure implements sdk.Backend: it finds the artefacts, compiles
// python.wasm into the cache (so workers only load it) and starts the pool.
// Calling it again replaces the pool; sessions keep their workers.
func (b *Backend) Configure(ctx context.Context, cfg *sdk.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	memory, err := parseSize(c.Memory)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if memory == 0 {
		memory = DefaultMemory
	}
	py, err := artefacts.Find(c.PythonDir)
	if err != nil {
		return err
	}
	state := cfg.StateDir
	if state == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		state = filepath.Join(dir, "mcpruntime", "wasm")
	}
	cache := c.CacheDir
	if cache == "" {
		cache = filepath.Join(state, "wazero-cache")
	}
	kernelDir := filepath.Join(state, "kernel")
	if _, err := kernel.Install(kernelDir); err != nil {
		return err
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	tmp, err := os.MkdirTemp(state, "run-")
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o555); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	start := time.Now()
	rt, err := guest.NewRuntime(ctx, guest.RuntimeOptions{Wasm: py.Wasm, CacheDir: cache})
	if err != nil {
		return err
	}
	b.logger.Info("python.wasm compiled", "artefacts", py.Dir, "cache", cache, "took", time.Since(start))
	compileKernel(ctx, rt, py.Wasm, py.Lib, kernelDir, b.logger)
	_ = rt.Close(ctx)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate plugin binary: %w", err)
	}
	l := &launcher{
		exe: exe, logger: b.logger, warmImports: WarmImports,
		cfg: worker.Config{Wasm: py.Wasm, Lib: py.Lib, CacheDir: cache, KernelDir: kernelDir, EmptyDir: empty},
	}
	b.mu.Lock()
	old, oldTmp := b.pool, b.tmp
	b.pool = newPool(l, cfg.PoolSize, memory, b.logger)
	b.tmp, b.memory = tmp, memory
	b.mu.Unlock()
	if old != nil {
		old.close()
		// Sessions of the old configuration keep their import roots there.
		_ = oldTmp
	}
	return nil
}

func (b *Backend) configured() (*pool, string, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pool == nil {
		return nil, "", 0, sdk.ErrNotConfigured
	}
	return b.pool, b.tmp, b.memory, nil
}

// CreateSession implements sdk.Backend.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	p, tmp, memory, err := b.configured()
	if err != nil {
		return err
	}
	if err := b.sessions.Reserve(spec.ID); err != nil {
		return err
	}
	if spec.Limits.MemoryBytes > 0 {
		memory = spec.Limits.MemoryBytes
	}
	s, err := newSession(spec, tmp, memory)
	if err == nil {
		if err = s.attach(ctx, p); err != nil {
			s.close()
		}
	}
	return b.sessions.Settle(spec.ID, s, err)
}

// Execute implements sdk.Backend.
func (b *Backend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s, err := b.sessions.Get(req.SessionID)
	if err != nil {
		return nil, err
	}
	p, _, _, err := b.configured()
	if err != nil {
		return nil, err
	}
	return s.exec(ctx, p, req, emit)
}

// DestroySession implements sdk.Backend.
func (b *Backend) DestroySession(_ context.Context, id string) error {
	s, err := b.sessions.Remove(id)
	if err != nil {
		return err
	}
	s.close()
	return nil
}

// Health implements sdk.Backend.
func (b *Backend) Health(context.Context) (*sdk.Health, error) {
	n := b.sessions.Len()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pool == nil {
		return &sdk.Health{Healthy: false, Message: "not configured", Sessions: n}, nil
	}
	ready, size := b.pool.ready()
	return &sdk.Health{Healthy: true, Sessions: n, Message: fmt.Sprintf("warm pool %d/%d", ready, size)}, nil
}

// Close implements sdk.Closer: it stops every session's worker and the pool.
func (b *Backend) Close(context.Context) error {
	sessions := b.sessions.TakeAll()
	b.mu.Lock()
	p, tmp := b.pool, b.tmp
	b.pool = nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() { defer wg.Done(); s.close() }()
	}
	if p != nil {
		p.close()
	}
	wg.Wait()
	if tmp != "" {
		return errors.Join(os.RemoveAll(tmp))
	}
	return nil
}
