// Package guest hosts CPython-for-WASI in wazero: it compiles python.wasm
// (through an on-disk compilation cache), lays out the guest file system and
// runs the interpreter with a given stdin/stdout.
package guest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Guest paths. The stdlib sits where a CPython built with --prefix=/usr/local
// looks for it, so no path configuration is needed inside the guest.
const (
	// Prefix is PYTHONHOME in the guest.
	Prefix = "/usr/local"
	// StdlibMount is where the artefacts' lib/ directory is mounted.
	StdlibMount = Prefix + "/lib"
	// KernelMount holds the sdk kernel, read-only.
	KernelMount = "/mcpruntime/kernel"
)

// pageSize is the WebAssembly page size.
const pageSize = 64 << 10

// maxPages is the most a wasm32 memory can have (4 GiB).
const maxPages = 65536

// RuntimeOptions configure a Runtime.
type RuntimeOptions struct {
	// Wasm is the host path of python.wasm.
	Wasm string
	// CacheDir holds wazero's compilation cache ("" disables it).
	CacheDir string
	// MemoryBytes caps the guest's linear memory (0: 4 GiB, the wasm32 maximum).
	MemoryBytes int64
	// CloseOnContextDone makes wazero check the context inside compiled
	// code so a cancelled context stops even a pure loop; it slows Python
	// down (see the README's measurements).
	CloseOnContextDone bool
}

// Runtime is a compiled python.wasm ready to be instantiated in wazero.
type Runtime struct {
	eng *wazeroEngine
	*wazeroModule
}

// NewRuntime compiles python.wasm (or loads it from the cache) in wazero.
func NewRuntime(ctx context.Context, o RuntimeOptions) (*Runtime, error) {
	eng, err := newWazeroWith(ctx, EngineOptions{Name: EngineWazero, CacheDir: o.CacheDir, MemoryBytes: o.MemoryBytes}, o.CloseOnContextDone)
	if err != nil {
		return nil, err
	}
	mod, err := eng.Load(ctx, o.Wasm, "")
	if err != nil {
		_ = eng.Close(ctx)
		return nil, err
	}
	return &Runtime{eng: eng, wazeroModule: mod.(*wazeroModule)}, nil
}

// wazeroEngine is the pure-Go engine.
type wazeroEngine struct {
	rt wazero.Runtime
}

func newWazero(ctx context.Context, o EngineOptions) (Engine, error) {
	return newWazeroWith(ctx, o, false)
}

func newWazeroWith(ctx context.Context, o EngineOptions, closeOnDone bool) (*wazeroEngine, error) {
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(closeOnDone).
		WithMemoryLimitPages(Pages(o.MemoryBytes))
	if o.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(o.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", o.CacheDir, err)
		}
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	return &wazeroEngine{rt: rt}, nil
}

// Name implements Engine.
func (e *wazeroEngine) Name() string { return EngineWazero }

// Version implements Engine.
func (e *wazeroEngine) Version() string { return "wazero " + WazeroVersion }

// WazeroVersion is the wazero release the plugin is built with.
const WazeroVersion = "v1.12.0"

// LateBinding implements Engine: wazero calls BindableFS for every path.
func (e *wazeroEngine) LateBinding() bool { return true }

// Close implements Engine.
func (e *wazeroEngine) Close(ctx context.Context) error { return e.rt.Close(ctx) }

// Load implements Engine; wazero's compilation cache keys modules itself.
func (e *wazeroEngine) Load(ctx context.Context, path, _ string) (Module, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	mod, err := e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", path, err)
	}
	return &wazeroModule{rt: e.rt, mod: mod}, nil
}

type wazeroModule struct {
	rt  wazero.Runtime
	mod wazero.CompiledModule
}

// HasExport implements Module.
func (m *wazeroModule) HasExport(name string) bool {
	_, ok := m.mod.ExportedFunctions()[name]
	return ok
}

// Pages converts a memory cap in bytes to wasm pages (0 or too large: the
// wasm32 maximum).
func Pages(bytes int64) uint32 {
	if bytes <= 0 || bytes >= maxPages*pageSize {
		return maxPages
	}
	p := bytes / pageSize
	if p < 1 {
		p = 1
	}
	return uint32(p)
}

// Close frees the compiled module and the runtime.
func (r *Runtime) Close(ctx context.Context) error { return r.eng.Close(ctx) }

// Mount maps a host directory into the guest: FS for an engine with late
// binding (wazero), else Dir with ReadOnly.
type Mount struct {
	FS       *BindableFS
	Dir      string
	ReadOnly bool
	Guest    string
}

// fs is the mount as a BindableFS.
func (m Mount) fs() *BindableFS {
	if m.FS != nil {
		return m.FS
	}
	return NewBindableFS(m.Dir, m.ReadOnly)
}

// RunOptions describe one interpreter run.
type RunOptions struct {
	// Args after the program name, e.g. the kernel's path.
	Args []string
	// Env is the guest environment as KEY=VALUE strings.
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StdlibDir is the host directory mounted read-only at StdlibMount.
	StdlibDir string
	// KernelDir, if set, is mounted read-only at KernelMount.
	KernelDir string
	// Mounts are further (bindable) mounts.
	Mounts []Mount
	// Entry is the exported function to call instead of _start (which
	// then does not run): a pre-initialized image's resume entry.
	Entry string
	// Capture, when set, receives the instance's state once Entry returned 0.
	Capture Capture
}

// ExitError is a guest that did not return normally from _start.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// TrapExitCode reports a guest that trapped (stack exhaustion, abort,
// a wazero error): 128+SIGABRT, like a process that aborted.
const TrapExitCode = 134

// Run instantiates python.wasm and runs it to completion. It returns the
// guest's exit status: 0 for a normal return, the proc_exit code, or
// TrapExitCode with the trap as err.
func (r *wazeroModule) Run(ctx context.Context, o RunOptions) (int, error) {
	fsc := wazero.NewFSConfig().(sysfs.FSConfig).
		WithSysFSMount(NewBindableFS(o.StdlibDir, true), StdlibMount)
	if o.KernelDir != "" {
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(NewBindableFS(o.KernelDir, true), KernelMount)
	}
	for _, m := range o.Mounts {
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(m.fs(), m.Guest)
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"python"}, o.Args...)...).
		WithStdin(o.Stdin).WithStdout(o.Stdout).WithStderr(o.Stderr).
		WithFSConfig(fsc).
		// wazero's defaults are deterministic fakes; Python needs real
		// clocks, real sleeps and real entropy (hash seeds, secrets).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)
	for _, kv := range o.Env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				cfg = cfg.WithEnv(kv[:i], kv[i+1:])
				break
			}
		}
	}
	if o.Entry != "" {
		cfg = cfg.WithStartFunctions()
	}
	mod, err := r.rt.InstantiateModule(ctx, r.mod, cfg)
	if mod != nil {
		defer mod.Close(ctx)
	}
	code := 0
	if err == nil && o.Entry != "" {
		f := mod.ExportedFunction(o.Entry)
		if f == nil {
			return TrapExitCode, &ExitError{Code: TrapExitCode, Err: fmt.Errorf("module exports no %s", o.Entry)}
		}
		var res []uint64
		res, err = f.Call(ctx)
		if err == nil && len(res) == 1 {
			code = int(int32(uint32(res[0])))
		}
	}
	if err == nil {
		if code == 0 && o.Capture != nil {
			mem := mod.ExportedMemory("memory")
			if mem == nil {
				return 1, errors.New("module exports no memory")
			}
			buf, _ := mem.Read(0, mem.Size())
			if err := o.Capture(buf, func(name string) (uint64, error) {
				g := mod.ExportedGlobal(name)
				if g == nil {
					return 0, fmt.Errorf("module exports no global %s", name)
				}
				return g.Get(), nil
			}); err != nil {
				return 1, err
			}
		}
		return code, nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode()), nil
	}
	return TrapExitCode, &ExitError{Code: TrapExitCode, Err: fmt.Errorf("wasm trap: %w", err)}
}
