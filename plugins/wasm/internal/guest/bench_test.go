package guest

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

const loop2M = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(2_000_000):\n    s += i\nprint(time.perf_counter() - t)"

// BenchmarkCancellationDesign measures what in-process cancellation
// (wazero's WithCloseOnContextDone, which checks the context inside compiled
// loops) costs pure Python, against the same instance without it (what a
// worker process runs; it is stopped by being killed). Medians of the
// guest's own timing of a 2M-iteration loop.
func BenchmarkCancellationDesign(b *testing.B) {
	cache := filepath.Join(testenv.StateDir(b), "wazero-cache")
	for _, closeOnDone := range []bool{false, true} {
		name := "worker_process"
		if closeOnDone {
			name = "close_on_context_done"
		}
		b.Run(name, func(b *testing.B) {
			dir := testenv.PythonDir(b)
			rt, err := NewRuntime(b.Context(), RuntimeOptions{Wasm: filepath.Join(dir, "python.wasm"), CacheDir: cache, CloseOnContextDone: closeOnDone})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(b.Context())
			var ds []time.Duration
			for range b.N {
				code, out, errs, err := runCode(b, rt, filepath.Join(dir, "lib"), loop2M)
				if err != nil || code != 0 {
					b.Fatalf("code=%d err=%v %s", code, err, errs)
				}
				f, _ := strconv.ParseFloat(strings.TrimSpace(out), 64)
				ds = append(ds, time.Duration(f*float64(time.Second)))
			}
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2])/1e6, "loop_ms")
		})
	}
}

// BenchmarkStartup measures a fresh interpreter (`python -c pass`) with the
// compiled module loaded from the cache: the part of a worker's start-up
// that the artefacts' location can influence (reading python.wasm and the
// stdlib from disk vs. from memory as go:embed would).
func BenchmarkStartup(b *testing.B) {
	dir := testenv.PythonDir(b)
	cache := filepath.Join(testenv.StateDir(b), "wazero-cache")
	b.Run("load_wasm_from_disk", func(b *testing.B) {
		for range b.N {
			if _, err := os.ReadFile(filepath.Join(dir, "python.wasm")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compile_from_cache", func(b *testing.B) {
		for range b.N {
			rt, err := NewRuntime(b.Context(), RuntimeOptions{Wasm: filepath.Join(dir, "python.wasm"), CacheDir: cache})
			if err != nil {
				b.Fatal(err)
			}
			rt.Close(b.Context())
		}
	})
	b.Run("python_c_pass", func(b *testing.B) {
		rt, _ := newRuntime(b, 0, false)
		for range b.N {
			if code, _, errs, err := runCode(b, rt, filepath.Join(dir, "lib"), "pass"); err != nil || code != 0 {
				b.Fatalf("code=%d err=%v %s", code, err, errs)
			}
		}
	})
}
