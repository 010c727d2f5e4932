package guest

import (
	"context"
	"fmt"
)

// Engine names, as config { engine = "..." } spells them.
const (
	EngineWazero   = "wazero"
	EngineWasmtime = "wasmtime"
)

// Engine compiles and runs WebAssembly modules for the guest: wazero (pure
// Go) or wasmtime (Cranelift, through cgo). Both serve the same guest file
// system layout, WASI view and exit semantics.
type Engine interface {
	// Name is the engine's config name.
	Name() string
	// Version names the engine and its release, for cache keys and reports.
	Version() string
	// Load compiles the module at path, or loads it from the engine's
	// cache. key, when set, identifies the module's content (saving a
	// hash of large snapshot modules); "" hashes the file.
	Load(ctx context.Context, path, key string) (Module, error)
	// LateBinding reports whether mounts given as BindableFS can be
	// re-pointed after instantiation. An engine without it needs every
	// mount's final host directory when Run starts.
	LateBinding() bool
	// Close frees the engine and the modules it loaded.
	Close(ctx context.Context) error
}

// Module is a compiled module ready to be instantiated.
type Module interface {
	// Run instantiates the module and calls its entry point (RunOptions.Entry,
	// default _start). It returns the guest's exit status: 0 for a normal
	// return, the proc_exit code, the entry's i32 result, or TrapExitCode
	// with the trap as err.
	Run(ctx context.Context, o RunOptions) (int, error)
	// HasExport reports whether the module exports a function of that name.
	HasExport(name string) bool
}

// EngineOptions configure NewEngine.
type EngineOptions struct {
	// Name selects the engine: EngineWazero or EngineWasmtime.
	Name string
	// CacheDir holds compiled modules ("" disables the cache).
	CacheDir string
	// MemoryBytes caps the guest's linear memory (0: 4 GiB, the wasm32 maximum).
	MemoryBytes int64
}

// NewEngine returns the named engine.
func NewEngine(ctx context.Context, o EngineOptions) (Engine, error) {
	switch o.Name {
	case EngineWazero, "":
		return newWazero(ctx, o)
	case EngineWasmtime:
		return newWasmtime(o)
	}
	return nil, fmt.Errorf("engine %q: want %q or %q", o.Name, EngineWazero, EngineWasmtime)
}

// Capture receives the state of an instance whose entry point returned 0:
// its linear memory and a reader of its exported globals. The memory is the
// engine's: it is valid only during the call.
type Capture func(mem []byte, global func(name string) (uint64, error)) error
