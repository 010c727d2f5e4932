package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Benchmarks report medians (ms) and ratios to native CPython measured in
// the same run:
//
//	go test -run '^$' -bench . -benchtime 30x
//
// exec_ms: one Execute of print(1+1) through the real plugin (gRPC + kernel).
// native_ms: `python3 -c 'print(1+1)'` as a process.

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// nativePython is the host's real python3 binary: `python3` on PATH may be a
// wrapper script (pyenv's shims add ~100 ms per start), which would flatter
// every ratio against it.
func nativePython(b *testing.B) string {
	b.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		b.Skip("no native python3 for the baseline")
	}
	return strings.TrimSpace(string(out))
}

// nativeStart is the median of n runs of the host's python3 -c 'print(1+1)'.
func nativeStart(b *testing.B, n int) time.Duration {
	b.Helper()
	py := nativePython(b)
	var ds []time.Duration
	for range n {
		start := time.Now()
		if out, err := exec.Command(py, "-c", "print(1+1)").Output(); err != nil || string(out) != "2\n" {
			b.Fatalf("native python3: %v %q", err, out)
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds)
}

// execsPerOp: each iteration times this many execs, so that -benchtime 30x
// gives a median over 600 samples of a session in use (back to back). A
// session's first exec after a second or more of idleness costs ~0.4 ms
// more here: every hop then wakes a sleeping thread on an idle vCPU.
const execsPerOp = 20

func BenchmarkExecExistingSession(b *testing.B) {
	p := launch(b, 0)
	id := newSession(b, p, sdk.SessionSpec{})
	native := nativeStart(b, 15)
	for range execsPerOp { // warm-up, after the baseline's process starts
		expectOK(b, p, id, "print(1+1)", "2\n")
	}
	var ds []time.Duration
	b.ResetTimer()
	for range b.N {
		for range execsPerOp {
			start := time.Now()
			expectOK(b, p, id, "print(1+1)", "2\n")
			ds = append(ds, time.Since(start))
		}
	}
	b.StopTimer()
	m := median(ds)
	b.ReportMetric(ms(m), "exec_ms")
	b.ReportMetric(ms(native), "native_ms")
	b.ReportMetric(float64(m)/float64(native), "ratio")
}

// waitPool blocks until the plugin's warm pool is full again.
func waitPool(b *testing.B, p *host.Plugin, size int) {
	b.Helper()
	want := fmt.Sprintf("warm pool %d/%d", size, size)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := p.Health(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		// The message goes on with the engine's name.
		if strings.HasPrefix(h.Message, want+",") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("pool never refilled: %s", h.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func BenchmarkNewSessionFromPool(b *testing.B) {
	const size = 2
	p := launch(b, size)
	native := nativeStart(b, 15)
	var first, create []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		waitPool(b, p, size)
		b.StartTimer()
		start := time.Now()
		id := newSession(b, p, sdk.SessionSpec{})
		created := time.Now()
		expectOK(b, p, id, "print(1+1)", "2\n")
		first = append(first, time.Since(created))
		create = append(create, created.Sub(start))
		b.StopTimer()
		_ = p.DestroySession(context.Background(), id)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(ms(median(first)), "first_exec_ms")
	b.ReportMetric(ms(median(create)), "create_ms")
	b.ReportMetric(ms(native), "native_ms")
	b.ReportMetric(float64(median(first))/float64(native), "ratio")
}

// Compute workloads time themselves inside Python, so the ratio compares
// interpreter speed, not start-up.
var computeCases = []struct{ name, code string }{
	{"loop_2M", "import time\nt = time.perf_counter()\ns = 0\nfor i in range(2_000_000):\n    s += i\nprint(time.perf_counter() - t)"},
	{"json_roundtrips", "import json, time\nd = {'a': list(range(50)), 'b': {'c': 'x' * 20, 'd': [1.5, None, True]}}\nt = time.perf_counter()\nfor _ in range(20_000):\n    d = json.loads(json.dumps(d))\nprint(time.perf_counter() - t)"},
}

// sameSourcePython is the native CPython that python/build.sh builds from
// the same source as python.wasm (the cross-build's "build python"), if
// this machine built the artefacts: a second baseline that leaves out the
// difference between the host's python3 and CPython 3.13 itself.
func sameSourcePython() string {
	cache := os.Getenv("MCPRUNTIME_BUILD_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "mcpruntime", "build")
	}
	py := filepath.Join(cache, "python-wasi", "build", "native", "python")
	if st, err := os.Stat(py); err != nil || st.Mode()&0o111 == 0 {
		return ""
	}
	return py
}

func BenchmarkCompute(b *testing.B) {
	p := launch(b, 0)
	id := newSession(b, p, sdk.SessionSpec{})
	py := nativePython(b)
	same := sameSourcePython()
	timed := func(b *testing.B, bin, code string) time.Duration {
		out, err := exec.Command(bin, "-c", code).Output()
		if err != nil {
			b.Fatalf("native %s: %v", bin, err)
		}
		return seconds(b, string(out))
	}
	for _, c := range computeCases {
		b.Run(c.name, func(b *testing.B) {
			var wasm, native, sameBuild []time.Duration
			for range b.N {
				o := execCode(b, p, id, c.code)
				if !o.res.OK() {
					b.Fatalf("%s: %s %s", c.name, o.res.Message, o.stderr)
				}
				wasm = append(wasm, seconds(b, o.stdout))
				native = append(native, timed(b, py, c.code))
				if same != "" {
					sameBuild = append(sameBuild, timed(b, same, c.code))
				}
			}
			b.ReportMetric(ms(median(wasm)), "wasm_ms")
			b.ReportMetric(ms(median(native)), "native_ms")
			b.ReportMetric(float64(median(wasm))/float64(median(native)), "ratio")
			if same != "" {
				b.ReportMetric(ms(median(sameBuild)), "native_3.13_ms")
				b.ReportMetric(float64(median(wasm))/float64(median(sameBuild)), "ratio_3.13")
			}
		})
	}
}

func seconds(b *testing.B, s string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		b.Fatalf("timing %q: %v", s, err)
	}
	return time.Duration(f * float64(time.Second))
}
