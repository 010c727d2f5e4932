package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// benchEngines lists backends whose plugin runs more than one engine, and
// the plugin environment variable that picks one. `bench` measures each
// engine in the same run, rows side by side.
var benchEngines = map[string]struct {
	env     string
	engines []string
}{
	"wasm": {env: "MCPRUNTIME_WASM_ENGINE", engines: []string{"wasmtime", "wazero"}},
}

// Compute programs timed inside Python (seconds on stdout), the same for
// native python3, the sandbox and Pyodide.
const (
	benchLoopCode = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(2_000_000):\n    s += i\nprint(time.perf_counter() - t)"
	benchJSONCode = "import json, time\nd = {'a': list(range(50)), 'b': {'c': 'x' * 20, 'd': [1.5, None, True]}}\nt = time.perf_counter()\nfor _ in range(20_000):\n    d = json.loads(json.dumps(d))\nprint(time.perf_counter() - t)"
)

// pyodideVersion is the peer baseline, installed from npm into the cache.
const pyodideVersion = "0.28.3"

//go:embed bench_pyodide.js
var pyodideScript string

// runEngineBench measures a multi-engine backend: native baselines once,
// then per engine the session rows, then Pyodide when Node is present.
func runEngineBench(ctx context.Context, a *app, backend string, n int) ([]benchRow, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, err
	}
	spec := benchEngines[backend]
	computeN := 5
	var rows []benchRow
	var nativeStart, nativeLoop, nativeJSON *benchRow
	if py, err := realPython(); err == nil {
		d, err := measure(n, func() error { return exec.Command(py, "-c", "pass").Run() })
		if err != nil {
			return nil, fmt.Errorf("native python3: %w", err)
		}
		r := summarize("native python3 -c pass (start)", d)
		nativeStart = &r
		loop, err := timedNative(py, benchLoopCode, computeN)
		if err != nil {
			return nil, err
		}
		js, err := timedNative(py, benchJSONCode, computeN)
		if err != nil {
			return nil, err
		}
		l, j := summarize("compute: 2M-iteration loop [native]", loop), summarize("compute: 20,000 json round trips [native]", js)
		nativeLoop, nativeJSON = &l, &j
		rows = append(rows, r, l, j)
	}
	sb := cfg.Sandbox(backend)
	if cfg.Sandboxes == nil {
		cfg.Sandboxes = map[string]*config.Sandbox{}
	}
	cfg.Sandboxes[backend] = sb
	saved := sb.Env
	defer func() { sb.Env = saved }()
	perEngine := make([][]benchRow, 0, len(spec.engines))
	for _, engine := range spec.engines {
		env := map[string]string{}
		for k, v := range saved {
			env[k] = v
		}
		env[spec.env] = engine
		sb.Env = env
		er, err := benchEngine(ctx, a, backend, engine, sb.PoolSize, n, computeN, nativeStart)
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", engine, err)
		}
		perEngine = append(perEngine, er)
	}
	// Side by side: each operation's engines next to each other.
	for i := range perEngine[0] {
		for _, er := range perEngine {
			if i < len(er) {
				rows = append(rows, er[i])
			}
		}
	}
	peer, err := benchPyodide(ctx, a, computeN, nativeLoop, nativeJSON)
	if err != nil {
		a.log().Warn("pyodide baseline skipped", "error", err)
	}
	return append(rows, peer...), nil
}

// benchEngine measures one engine: a pooled manager, then one without pools.
func benchEngine(ctx context.Context, a *app, backend, engine string, pool, n, computeN int, nativeStart *benchRow) ([]benchRow, error) {
	label := func(s string) string { return s + " [" + engine + "]" }
	var rows []benchRow
	m, first, start, err := benchFirstSession(ctx, a, backend)
	if err != nil {
		return nil, err
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	if _, err := benchExec(ctx, m, first, "print(1+1)"); err != nil {
		return nil, err
	}
	once := float64(time.Since(start).Microseconds()) / 1000
	rows = append(rows, benchRow{Name: label("plugin start + first session + exec"), N: 1, MedianMs: once, P90Ms: once})
	d, err := measure(n*3, func() error { _, err := benchExec(ctx, m, first, "print(1+1)"); return err })
	if err != nil {
		return nil, err
	}
	rows = append(rows, summarize(label("exec in existing session"), d))
	// A sample is Open + first exec; the Close after it is not timed.
	newSession := func(m *session.Manager) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			s, err := m.Open(ctx, session.Options{Backend: backend})
			if err != nil {
				return 0, err
			}
			_, err = benchExec(ctx, m, s, "print(1+1)")
			d := time.Since(start)
			if cerr := m.Close(ctx, s.ID); err == nil {
				err = cerr
			}
			return d, err
		}
	}
	if pool > 0 {
		// Each sample takes from a full pool: the refill runs between.
		var d []time.Duration
		for range max(5, n/3) {
			time.Sleep(400 * time.Millisecond)
			x, err := newSession(m)()
			if err != nil {
				return nil, err
			}
			d = append(d, x)
		}
		rows = append(rows, summarize(label(fmt.Sprintf("pool (%d) → new session + first exec", pool)), d))
	}
	time.Sleep(400 * time.Millisecond)
	d, err = samples(30, newSession(m))
	if err != nil {
		return nil, err
	}
	rows = append(rows, compare(summarize(label(fmt.Sprintf("30 sessions back to back (pool %d) + first exec", pool)), d), nativeStart))
	// Compute alternates with native python3 (the same program), so both
	// see the same load on a shared machine; the ratio is to those runs.
	py, pyErr := realPython()
	for _, c := range []struct{ name, code string }{{"compute: 2M-iteration loop", benchLoopCode}, {"compute: 20,000 json round trips", benchJSONCode}} {
		var d, native []time.Duration
		for range computeN {
			if pyErr == nil {
				x, err := timedNative(py, c.code, 1)
				if err != nil {
					return nil, err
				}
				native = append(native, x...)
			}
			out, err := benchExec(ctx, m, first, c.code)
			if err != nil {
				return nil, err
			}
			t, err := secondsOut(out)
			if err != nil {
				return nil, err
			}
			d = append(d, t)
		}
		var base *benchRow
		if len(native) > 0 {
			r := summarize(c.name+" [native, alternating with "+engine+"]", native)
			base = &r
		}
		rows = append(rows, compare(summarize(label(c.name), d), base))
	}
	m.Shutdown(context.WithoutCancel(ctx))

	// Without a pool: every session starts its own worker.
	cold, err := a.oneShotManager()
	if err != nil {
		return nil, err
	}
	defer cold.Shutdown(context.WithoutCancel(ctx))
	warm, err := cold.Open(ctx, session.Options{Backend: backend}) // plugin start, Configure
	if err != nil {
		return nil, err
	}
	defer cold.Close(ctx, warm.ID)
	d, err = samples(n, newSession(cold))
	if err != nil {
		return nil, err
	}
	rows = append(rows, compare(summarize(label("cold new session (no pool) + first exec"), d), nativeStart))
	return rows, nil
}

// samples runs f n times and collects the durations it reports.
func samples(n int, f func() (time.Duration, error)) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		d, err := f()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// benchExec runs code and returns its stdout.
func benchExec(ctx context.Context, m *session.Manager, s *session.Session, code string) (string, error) {
	var out strings.Builder
	res, err := m.Exec(ctx, s, code, 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	if err != nil {
		return "", err
	}
	if !res.OK() {
		return "", fmt.Errorf("%.40q failed: %s", code, res.Message)
	}
	return out.String(), nil
}

func secondsOut(out string) (time.Duration, error) {
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, errors.New("no timing printed")
	}
	s, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		return 0, fmt.Errorf("timing %q: %w", out, err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

func timedNative(py, code string, k int) ([]time.Duration, error) {
	var d []time.Duration
	for range k {
		out, err := exec.Command(py, "-c", code).Output()
		if err != nil {
			return nil, fmt.Errorf("native python3: %w", err)
		}
		t, err := secondsOut(string(out))
		if err != nil {
			return nil, err
		}
		d = append(d, t)
	}
	return d, nil
}

// benchPyodide runs the compute programs in Pyodide under Node, in-process
// (loadPyodide once, then each program k times), when node and npm exist;
// the npm package is installed into the user's cache on first use.
func benchPyodide(ctx context.Context, a *app, k int, nativeLoop, nativeJSON *benchRow) ([]benchRow, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("node not found")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "mcpruntime", "pyodide")
	pkg := filepath.Join(dir, "node_modules", "pyodide", "pyodide.js")
	if _, err := os.Stat(pkg); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return nil, errors.New("npm not found")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: installing pyodide@%s from npm into %s\n", pyodideVersion, dir)
		ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ictx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "pyodide@"+pyodideVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm install pyodide: %w: %s", err, out)
		}
	}
	script := filepath.Join(dir, "bench.js")
	if err := os.WriteFile(script, []byte(pyodideScript), 0o644); err != nil {
		return nil, err
	}
	codes, err := json.Marshal(map[string]any{"loop": benchLoopCode, "json": benchJSONCode, "k": k})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, node, script, pkg)
	cmd.Stdin = strings.NewReader(string(codes))
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pyodide: %w", err)
	}
	// Native python3 again, right after: the same load on a shared machine.
	if py, err := realPython(); err == nil {
		if loop, err := timedNative(py, benchLoopCode, k); err == nil {
			r := summarize("compute: 2M-iteration loop [native, after pyodide]", loop)
			nativeLoop = &r
		}
		if js, err := timedNative(py, benchJSONCode, k); err == nil {
			r := summarize("compute: 20,000 json round trips [native, after pyodide]", js)
			nativeJSON = &r
		}
	}
	var res struct {
		LoadMs float64   `json:"load_ms"`
		Loop   []float64 `json:"loop"`
		JSON   []float64 `json:"json"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("pyodide output %q: %w", out, err)
	}
	secs := func(v []float64) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, s := range v {
			d[i] = time.Duration(s * float64(time.Second))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d
	}
	label := " [pyodide " + pyodideVersion + ", node " + strings.TrimSpace(nodeVersion(node)) + "]"
	return []benchRow{
		{Name: "loadPyodide()" + label, N: 1, MedianMs: res.LoadMs, P90Ms: res.LoadMs},
		compare(summarize("compute: 2M-iteration loop"+label, secs(res.Loop)), nativeLoop),
		compare(summarize("compute: 20,000 json round trips"+label, secs(res.JSON)), nativeJSON),
	}, nil
}

func nodeVersion(node string) string {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "?"
	}
	return string(out)
}
