package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Pre-initialization (the technique of Wizer): python.wasm runs CPython's
// start-up and the kernel's imports once, through its exported
// mcpruntime_preinit (python/preinit.c); its linear memory and mutable
// globals are then written into a copy of the module as data segments and
// global initializers. An instance of that image calls mcpruntime_resume
// and is where the pre-init run stopped, in microseconds instead of the
// ~100 ms a fresh interpreter takes. The image is plain WebAssembly: both
// engines run it.

// Entry points of python.wasm built with python/preinit.c.
const (
	PreinitEntry = "mcpruntime_preinit"
	ResumeEntry  = "mcpruntime_resume"
)

// globalExportPrefix names the exports added to read mutable globals.
const globalExportPrefix = "mcpruntime.global."

// snapshotFormat versions the image layout (bump on changes to this file).
const snapshotFormat = "1"

// SnapshotOptions describe a pre-initialized image.
type SnapshotOptions struct {
	// Wasm is python.wasm (with the pre-init entry points).
	Wasm string
	// Dir holds images, named by Key.
	Dir string
	// Key identifies everything that went into the image besides python.wasm
	// (the kernel, the programs); the image is rebuilt when it changes.
	Key string
	// Run describes the pre-init run: its env must carry MCPRUNTIME_PREINIT
	// and MCPRUNTIME_RESUME, its mounts must be the sessions' (same order).
	Run RunOptions
}

// EnsureSnapshot returns the image for o and its cache key, building it
// with eng when it is not in o.Dir yet.
func EnsureSnapshot(ctx context.Context, eng Engine, o SnapshotOptions) (path, key string, err error) {
	wasm, err := os.ReadFile(o.Wasm)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", o.Wasm, err)
	}
	h := sha256.New()
	h.Write(wasm)
	io.WriteString(h, "\x00"+snapshotFormat+"\x00"+o.Key)
	key = hex.EncodeToString(h.Sum(nil))
	path = filepath.Join(o.Dir, "python-"+key[:32]+".wasm")
	if _, err := os.Stat(path); err == nil {
		return path, key, nil
	}
	img, err := buildSnapshot(ctx, eng, wasm, o)
	if err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(path, img); err != nil {
		return "", "", err
	}
	return path, key, nil
}

// ErrNoPreinit is python.wasm without the pre-init entry points.
var ErrNoPreinit = errors.New("python.wasm has no pre-initialization entry points (rebuild it: make -C plugins/wasm python)")

func buildSnapshot(ctx context.Context, eng Engine, wasm []byte, o SnapshotOptions) ([]byte, error) {
	m, err := parseModule(wasm)
	if err != nil {
		return nil, err
	}
	exports, err := m.exports()
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, e := range exports {
		has[e.name] = e.kind == 0
	}
	if !has[PreinitEntry] || !has[ResumeEntry] {
		return nil, ErrNoPreinit
	}
	if n, err := m.importedGlobals(); err != nil || n != 0 {
		return nil, fmt.Errorf("snapshot: module imports %d globals (%v)", n, err)
	}
	globals, err := m.globals()
	if err != nil {
		return nil, err
	}
	// The instrumented module: the same, with every mutable global exported.
	instrumented := make([]wasmExport, len(exports))
	copy(instrumented, exports)
	for i, g := range globals {
		if g.mutable {
			instrumented = append(instrumented, wasmExport{name: globalExportPrefix + strconv.Itoa(i), kind: 3, idx: uint32(i)})
		}
	}
	m.setExports(instrumented)
	tmp, err := os.CreateTemp(o.Dir, ".preinit-*.wasm")
	if err != nil {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("snapshot dir: %w", err)
		}
		if tmp, err = os.CreateTemp(o.Dir, ".preinit-*.wasm"); err != nil {
			return nil, fmt.Errorf("snapshot dir: %w", err)
		}
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(m.encode()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write instrumented module: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write instrumented module: %w", err)
	}
	mod, err := eng.Load(ctx, tmp.Name(), "")
	if err != nil {
		return nil, err
	}

	var mem []byte
	values := map[int]uint64{}
	run := o.Run
	run.Entry = PreinitEntry
	// Python keeps the stdio objects it makes at start-up: the fds must
	// be there (their files are the sessions' own after a restore).
	var stdout, stderr bytes.Buffer
	if run.Stdin == nil {
		run.Stdin = bytes.NewReader(nil)
	}
	if run.Stdout == nil {
		run.Stdout = &stdout
	}
	if run.Stderr == nil {
		run.Stderr = &stderr
	}
	run.Capture = func(memory []byte, global func(string) (uint64, error)) error {
		mem = bytes.Clone(memory)
		for i, g := range globals {
			if !g.mutable {
				continue
			}
			v, err := global(globalExportPrefix + strconv.Itoa(i))
			if err != nil {
				return err
			}
			values[i] = v
		}
		return nil
	}
	code, err := mod.Run(ctx, run)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return nil, fmt.Errorf("pre-initialize python.wasm: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if mem == nil {
		return nil, errors.New("pre-initialize python.wasm: no state captured")
	}

	// The image: the original module (its own exports) with the state.
	m.setExports(exports)
	for i, v := range values {
		init, err := constExpr(globals[i].typ, v)
		if err != nil {
			return nil, err
		}
		globals[i].init = init
	}
	m.setGlobals(globals)
	if err := m.setMemoryMin(uint32(len(mem) / pageSize)); err != nil {
		return nil, err
	}
	if err := m.setData(dataSegments(mem)); err != nil {
		return nil, err
	}
	return m.encode(), nil
}

// dataSegments covers the non-zero parts of mem (a fresh memory is zero),
// in blocks of 4 KiB merged when fewer than two zero blocks lie between.
func dataSegments(mem []byte) []dataSegment {
	const block = 4096
	var segs []dataSegment
	start, end := -1, -1 // current segment [start, end)
	for off := 0; off < len(mem); off += block {
		hi := min(off+block, len(mem))
		if isZero(mem[off:hi]) {
			continue
		}
		if start >= 0 && off-end > 2*block {
			segs = append(segs, dataSegment{offset: uint32(start), data: mem[start:end]})
			start = -1
		}
		if start < 0 {
			start = off
		}
		end = hi
	}
	if start >= 0 {
		segs = append(segs, dataSegment{offset: uint32(start), data: mem[start:end]})
	}
	return segs
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
