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
	run    *runDir
	memory int64
	engine string // the configured engine, for Health
	// libraries are the configured packages' modules (Info).
	libraries []string

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
	b.mu.Lock()
	libs := b.libraries
	b.mu.Unlock()
	return &sdk.Info{
		Name: "wasm", Version: Version, ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "CPython " + artefacts.PythonVersion + " compiled to WASI, run by wasmtime or wazero; no daemon, no network",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationWasm, Languages: []string{"python"},
			EnforcedLimits: []string{sdk.LimitTimeout, sdk.LimitOutput, sdk.LimitMemory}, // memory: the instance's linear memory cap
			Libraries:      libs,
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
	engine, err := engineName(c.Engine)
	if err != nil {
		return err
	}
	py, err := artefacts.Find(c.PythonDir)
	if err != nil {
		return err
	}
	if py, err = py.WithPackages(c.Packages); err != nil {
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
	run, err := newRunDir(state, b.logger)
	if err != nil {
		return err
	}
	// In the background: the run dirs of killed plugins go within moments
	// of this start, whatever it does next (compiling python.wasm).
	go func() {
		if removed := sweepRunDirs(state, b.logger); len(removed) > 0 {
			b.logger.Info("swept the run dirs of dead plugin processes", "dirs", removed)
		}
	}()
	empty := filepath.Join(run.path, "empty")
	if err := os.Mkdir(empty, 0o555); err != nil {
		run.retire()
		return fmt.Errorf("state dir: %w", err)
	}
	start := time.Now()
	eng, err := guest.NewEngine(ctx, guest.EngineOptions{Name: engine, CacheDir: cache})
	if err != nil {
		run.retire()
		return err
	}
	defer eng.Close(ctx)
	mod, err := eng.Load(ctx, py.Wasm, "")
	if err != nil {
		run.retire()
		return err
	}
	b.logger.Info("python.wasm compiled", "engine", eng.Version(), "artefacts", py.Dir, "cache", cache, "took", time.Since(start))
	compileKernel(ctx, mod, py.Wasm, py.Lib, kernelDir, b.logger)
	img, err := ensureImage(ctx, eng, py, kernelDir, cache, empty, WarmImports, b.logger)
	if err != nil {
		run.retire()
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		run.retire()
		return fmt.Errorf("locate plugin binary: %w", err)
	}
	l := &launcher{
		exe: exe, logger: b.logger, warmImports: WarmImports, lateBinding: eng.LateBinding(),
		cfg: worker.Config{Engine: engine, Wasm: py.Wasm, Lib: py.Lib, CacheDir: cache, KernelDir: kernelDir, EmptyDir: empty},
	}
	if img != nil {
		l.cfg.Image, l.cfg.ImageKey = img.path, img.key
	}
	if err := l.setupStage(run.path); err != nil {
		run.retire()
		return err
	}
	b.mu.Lock()
	old, oldRun := b.pool, b.run
	b.pool = newPool(l, cfg.PoolSize, memory, b.logger)
	b.run, b.memory, b.engine = run, memory, eng.Version()
	b.libraries = artefacts.ImportNames(c.Packages)
	b.mu.Unlock()
	if old != nil {
		old.close()
	}
	if oldRun != nil {
		// Sessions of the old configuration keep their import roots there:
		// it goes with the last of them.
		if err := oldRun.retire(); err != nil {
			b.logger.Warn("previous run dir", "error", err)
		}
	}
	return nil
}

// configured returns the pool and, with a reference taken for a session
// when acquire is set, the run dir.
func (b *Backend) configured(acquire bool) (*pool, *runDir, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pool == nil {
		return nil, nil, 0, sdk.ErrNotConfigured
	}
	if acquire {
		b.run.acquire()
	}
	return b.pool, b.run, b.memory, nil
}

// CreateSession implements sdk.Backend.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	_, run, memory, err := b.configured(true)
	if err != nil {
		return err
	}
	if err := b.sessions.Reserve(spec.ID); err != nil {
		b.releaseRun(run)
		return err
	}
	if spec.Limits.MemoryBytes > 0 {
		memory = spec.Limits.MemoryBytes
	}
	s, err := b.newSession(spec, run, memory)
	if err != nil {
		b.releaseRun(run)
	} else if err = s.Start(ctx); err != nil {
		b.closeSession(ctx, s)
	}
	return b.sessions.Settle(spec.ID, s, err)
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
	b.closeSession(ctx, s)
	return nil
}

// closeSession stops a session and drops its reference to its run dir.
func (b *Backend) closeSession(ctx context.Context, s *session) {
	if err := s.close(ctx); err != nil {
		b.logger.Warn("close session", "error", err)
	}
	b.releaseRun(s.run)
}

func (b *Backend) releaseRun(r *runDir) {
	if err := r.release(); err != nil {
		b.logger.Warn("run dir", "error", err)
	}
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
	return &sdk.Health{Healthy: true, Sessions: n, Message: fmt.Sprintf("warm pool %d/%d, engine %s", ready, size, b.engine)}, nil
}

// Close implements sdk.Closer: it stops every session's worker and the pool.
func (b *Backend) Close(ctx context.Context) error {
	sessions := b.sessions.TakeAll()
	b.mu.Lock()
	p, run := b.pool, b.run
	b.pool, b.run = nil, nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() { defer wg.Done(); b.closeSession(ctx, s) }()
	}
	if p != nil {
		p.close()
	}
	wg.Wait()
	if run != nil {
		return run.retire()
	}
	return nil
}
