//go:build !nowasmtime

package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v37"
)

// WasmtimeVersion is the wasmtime release the plugin links (wasmtime-go's
// prebuilt static library); precompiled modules are only valid for it.
const WasmtimeVersion = "37.0.0"

// WasmtimeAvailable reports whether this build includes wasmtime.
const WasmtimeAvailable = true

// wasmtimeEngine is wasmtime with Cranelift at its speed level. Compiled
// modules are serialized into the cache dir and loaded from there with
// mmap, so memory images are mapped copy-on-write (memory_init_cow).
type wasmtimeEngine struct {
	eng    *wasmtime.Engine
	cache  string
	memory int64
}

func newWasmtime(o EngineOptions) (Engine, error) {
	cfg := wasmtime.NewConfig()
	cfg.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	cfg.SetMemoryInitCOWSet(true)
	// CPython recurses deeply in C before its own recursion limit trips;
	// the same 8 MiB python.wasm reserves for its shadow stack.
	cfg.SetMaxWasmStack(8 << 20)
	e := &wasmtimeEngine{eng: wasmtime.NewEngineWithConfig(cfg), memory: o.MemoryBytes}
	if o.CacheDir != "" {
		e.cache = filepath.Join(o.CacheDir, "wasmtime-"+WasmtimeVersion)
	}
	return e, nil
}

// Name implements Engine.
func (e *wasmtimeEngine) Name() string { return EngineWasmtime }

// Version implements Engine.
func (e *wasmtimeEngine) Version() string { return "wasmtime " + WasmtimeVersion }

// LateBinding implements Engine: wasmtime's WASI preopens are fixed when
// the store is made.
func (e *wasmtimeEngine) LateBinding() bool { return false }

// Close implements Engine.
func (e *wasmtimeEngine) Close(context.Context) error {
	e.eng.Close()
	return nil
}

// Load implements Engine: a precompiled module from the cache, else a
// compilation stored there for the next time.
func (e *wasmtimeEngine) Load(_ context.Context, path, key string) (Module, error) {
	var wasm []byte
	if key == "" {
		var err error
		if wasm, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		sum := sha256.Sum256(wasm)
		key = hex.EncodeToString(sum[:])
	}
	var cached string
	if e.cache != "" {
		cached = filepath.Join(e.cache, key+".cwasm")
		if mod, err := wasmtime.NewModuleDeserializeFile(e.eng, cached); err == nil {
			return e.module(mod), nil
		}
	}
	if wasm == nil {
		var err error
		if wasm, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	mod, err := wasmtime.NewModule(e.eng, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", path, err)
	}
	if cached == "" {
		return e.module(mod), nil
	}
	ser, err := mod.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialize %s: %w", path, err)
	}
	if err := writeFileAtomic(cached, ser); err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	// From the file: mapped, not copied, and its memory image copy-on-write.
	if fromFile, err := wasmtime.NewModuleDeserializeFile(e.eng, cached); err == nil {
		mod.Close()
		mod = fromFile
	}
	return e.module(mod), nil
}

func (e *wasmtimeEngine) module(mod *wasmtime.Module) *wasmtimeModule {
	m := &wasmtimeModule{e: e, mod: mod, exports: map[string]bool{}}
	for _, ex := range mod.Exports() {
		if ex.Type().FuncType() != nil {
			m.exports[ex.Name()] = true
		}
	}
	return m
}

type wasmtimeModule struct {
	e       *wasmtimeEngine
	mod     *wasmtime.Module
	exports map[string]bool
}

// HasExport implements Module.
func (m *wasmtimeModule) HasExport(name string) bool { return m.exports[name] }

// Run implements Module.
func (m *wasmtimeModule) Run(_ context.Context, o RunOptions) (code int, err error) {
	store := wasmtime.NewStore(m.e.eng)
	defer store.Close()
	limit := m.e.memory
	if limit <= 0 || limit > maxPages*pageSize {
		limit = maxPages * pageSize
	}
	store.Limiter(limit, -1, -1, -1, -1)

	wasi := wasmtime.NewWasiConfig()
	wasi.SetArgv(append([]string{"python"}, o.Args...))
	var keys, vals []string
	for _, kv := range o.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			keys, vals = append(keys, k), append(vals, v)
		}
	}
	wasi.SetEnv(keys, vals)
	stdio, err := newStdio(wasi, o)
	if err != nil {
		return 1, err
	}
	defer stdio.cleanup()
	// The same order as wazero's mounts: a snapshot's wasi-libc remembers
	// which fd is which preopen.
	mounts := []Mount{{Dir: o.StdlibDir, ReadOnly: true, Guest: StdlibMount}}
	if o.KernelDir != "" {
		mounts = append(mounts, Mount{Dir: o.KernelDir, ReadOnly: true, Guest: KernelMount})
	}
	mounts = append(mounts, o.Mounts...)
	for _, mt := range mounts {
		dir := mt.Dir
		if dir == "" {
			return 1, fmt.Errorf("mount at %s: wasmtime needs the host directory when the instance starts", mt.Guest)
		}
		dp, fp := wasmtime.DIR_READ|wasmtime.DIR_WRITE, wasmtime.FILE_READ|wasmtime.FILE_WRITE
		if mt.ReadOnly {
			dp, fp = wasmtime.DIR_READ, wasmtime.FILE_READ
		}
		if err := wasi.PreopenDir(dir, mt.Guest, dp, fp); err != nil {
			return 1, fmt.Errorf("mount %s at %s: %w", dir, mt.Guest, err)
		}
	}
	store.SetWasi(wasi)

	linker := wasmtime.NewLinker(m.e.eng)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return 1, fmt.Errorf("define WASI: %w", err)
	}
	inst, err := linker.Instantiate(store, m.mod)
	if err != nil {
		return TrapExitCode, &ExitError{Code: TrapExitCode, Err: fmt.Errorf("instantiate: %w", err)}
	}
	entry := o.Entry
	if entry == "" {
		entry = "_start"
	}
	f := inst.GetFunc(store, entry)
	if f == nil {
		return TrapExitCode, &ExitError{Code: TrapExitCode, Err: fmt.Errorf("module exports no %s", entry)}
	}
	res, err := f.Call(store)
	defer func() {
		if ferr := stdio.finish(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	if err != nil {
		var werr *wasmtime.Error
		if errors.As(err, &werr) {
			if status, ok := werr.ExitStatus(); ok {
				return int(status), nil
			}
		}
		return TrapExitCode, &ExitError{Code: TrapExitCode, Err: fmt.Errorf("wasm trap: %w", err)}
	}
	if v, ok := res.(int32); ok {
		code = int(v)
	}
	if code == 0 && o.Capture != nil {
		ex := inst.GetExport(store, "memory")
		if ex == nil || ex.Memory() == nil {
			return 1, errors.New("module exports no memory")
		}
		err := o.Capture(ex.Memory().UnsafeData(store), func(name string) (uint64, error) {
			ex := inst.GetExport(store, name)
			if ex == nil || ex.Global() == nil {
				return 0, fmt.Errorf("module exports no global %s", name)
			}
			v := ex.Global().Get(store)
			switch v.Kind() {
			case wasmtime.KindI32:
				return uint64(uint32(v.I32())), nil
			case wasmtime.KindI64:
				return uint64(v.I64()), nil
			case wasmtime.KindF32:
				return uint64(math.Float32bits(v.F32())), nil
			case wasmtime.KindF64:
				return math.Float64bits(v.F64()), nil
			}
			return 0, fmt.Errorf("global %s: unsupported type", name)
		})
		if err != nil {
			return 1, err
		}
	}
	return code, nil
}

// wasmtimeStdio connects the guest's stdio: the worker's own descriptors
// are inherited (the kernel channel, no copy in between); other readers and
// writers go through temporary files, wasmtime's C API taking only paths.
type wasmtimeStdio struct {
	tmp    string
	copies []func() error
}

func newStdio(wasi *wasmtime.WasiConfig, o RunOptions) (*wasmtimeStdio, error) {
	s := &wasmtimeStdio{}
	tmpFile := func(name string) (string, error) {
		if s.tmp == "" {
			dir, err := os.MkdirTemp("", "mcpruntime-wasmtime-stdio-")
			if err != nil {
				return "", err
			}
			s.tmp = dir
		}
		return filepath.Join(s.tmp, name), nil
	}
	switch {
	case o.Stdin == os.Stdin:
		wasi.InheritStdin()
	case o.Stdin != nil:
		p, err := tmpFile("stdin")
		if err != nil {
			return s, err
		}
		data, err := io.ReadAll(o.Stdin)
		if err != nil {
			return s, fmt.Errorf("guest stdin: %w", err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return s, err
		}
		if err := wasi.SetStdinFile(p); err != nil {
			return s, fmt.Errorf("guest stdin: %w", err)
		}
	}
	out := func(w io.Writer, std *os.File, name string, inherit func(), set func(string) error) error {
		switch {
		case w == nil:
			return nil
		case w == std:
			inherit()
			return nil
		}
		p, err := tmpFile(name)
		if err != nil {
			return err
		}
		if err := set(p); err != nil {
			return fmt.Errorf("guest %s: %w", name, err)
		}
		s.copies = append(s.copies, func() error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = w.Write(data)
			return err
		})
		return nil
	}
	if err := out(o.Stdout, os.Stdout, "stdout", wasi.InheritStdout, wasi.SetStdoutFile); err != nil {
		return s, err
	}
	if err := out(o.Stderr, os.Stderr, "stderr", wasi.InheritStderr, wasi.SetStderrFile); err != nil {
		return s, err
	}
	return s, nil
}

// finish hands captured output to the caller's writers.
func (s *wasmtimeStdio) finish() error {
	var errs []error
	for _, c := range s.copies {
		errs = append(errs, c())
	}
	s.copies = nil
	return errors.Join(errs...)
}

func (s *wasmtimeStdio) cleanup() {
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}
