package main

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// benchRow is one measured operation.
type benchRow struct {
	Name     string  `json:"name"`
	N        int     `json:"n"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	// Baseline names the row this one is compared with; Ratio = median / baseline median.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
}

const computeCode = "s = 0\nfor i in range(2_000_000):\n    s += i * i % 7\nimport json\nfor _ in range(2000):\n    json.loads(json.dumps({'a': [1, 2, 3], 'b': 'x' * 50}))\nprint(s)"

func benchCmd(a *app) *cobra.Command {
	var backend string
	var n int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a backend: session start, exec latency, compute speed",
		Long: `Measure, in one run, against native python3 as the baseline:
  native python3 -c 'print(1+1)'        (baseline for start-up)
  new session + first exec              (pool → first exec)
  exec print(1+1) in an existing session
  compute (2M-iteration loop + 2000 JSON round-trips), sandbox vs native
  a recorded step with replay.snapshots every_step vs off (backends with
  the snapshots capability)
Reports medians, 90th percentiles and ratios.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			if backend == "" {
				backend = cfg.Backend
			}
			run := runBench
			if _, ok := benchEngines[backend]; ok {
				run = runEngineBench // one row per engine (bench_engines.go)
			}
			rows, err := run(cmd.Context(), a, backend, n)
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), map[string]any{"backend": backend, "results": rows})
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "backend %s\n", backend)
			fmt.Fprintln(tw, "OPERATION\tN\tMEDIAN\tP90\tRATIO")
			for _, r := range rows {
				ratio := ""
				if r.Baseline != "" {
					ratio = fmt.Sprintf("%.3gx %s", r.Ratio, r.Baseline)
				}
				fmt.Fprintf(tw, "%s\t%d\t%.3f ms\t%.3f ms\t%s\n", r.Name, r.N, r.MedianMs, r.P90Ms, ratio)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&backend, "backend", "", "backend to measure (default runtime.backend)")
	cmd.Flags().IntVarP(&n, "count", "n", 30, "repetitions per operation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func measure(n int, f func() error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

func summarize(name string, d []time.Duration) benchRow {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	return benchRow{Name: name, N: len(d), MedianMs: ms(d[len(d)/2]), P90Ms: ms(d[len(d)*9/10])}
}

func compare(r benchRow, base *benchRow) benchRow {
	if base != nil && base.MedianMs > 0 {
		r.Baseline, r.Ratio = base.Name, r.MedianMs/base.MedianMs
	}
	return r
}

func runBench(ctx context.Context, a *app, backend string, n int) ([]benchRow, error) {
	var rows []benchRow
	var nativeStart, nativeCompute *benchRow
	if py, err := realPython(); err == nil {
		d, err := measure(n, func() error { return exec.Command(py, "-c", "print(1+1)").Run() })
		if err != nil {
			return nil, fmt.Errorf("native python3: %w", err)
		}
		r := summarize("native python3 -c (start)", d)
		nativeStart = &r
		d, err = measure(max(3, n/10), func() error { return exec.Command(py, "-c", computeCode).Run() })
		if err != nil {
			return nil, err
		}
		c := summarize("native python3 compute", d)
		nativeCompute = &c
		rows = append(rows, r, c)
	}
	m, first, start, err := benchFirstSession(ctx, a, backend)
	if err != nil {
		return nil, err
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	rows = append(rows, benchRow{Name: "plugin start + first session", N: 1, MedianMs: float64(time.Since(start).Microseconds()) / 1000, P90Ms: float64(time.Since(start).Microseconds()) / 1000})
	run := func(s *session.Session, code string) error {
		res, err := m.Exec(ctx, s, code, 0, func(sdk.Event) {})
		if err != nil {
			return err
		}
		if !res.OK() {
			return fmt.Errorf("%q failed: %s", code, res.Message)
		}
		return nil
	}
	if err := run(first, "print(1+1)"); err != nil {
		return nil, err
	}
	// Let a warm pool refill before measuring new sessions.
	time.Sleep(500 * time.Millisecond)
	d, err := measure(n, func() error {
		s, err := m.Open(ctx, session.Options{Backend: backend})
		if err != nil {
			return err
		}
		defer m.Close(ctx, s.ID)
		return run(s, "print(1+1)")
	})
	if err != nil {
		return nil, err
	}
	rows = append(rows, compare(summarize("new session + first exec", d), nativeStart))
	d, err = measure(n*3, func() error { return run(first, "print(1+1)") })
	if err != nil {
		return nil, err
	}
	rows = append(rows, compare(summarize("exec in existing session", d), nativeStart))
	d, err = measure(max(3, n/10), func() error { return run(first, computeCode) })
	if err != nil {
		return nil, err
	}
	rows = append(rows, compare(summarize("compute in session", d), nativeCompute))
	snaps, err := benchSnapshots(ctx, m, a.log(), backend, n)
	if err != nil {
		return nil, err
	}
	return append(rows, snaps...), nil
}

// realPython is the host's python3 binary itself: `python3` on PATH may be a
// wrapper script (pyenv's shims add ~100 ms per start), which would flatter
// every ratio against it.
func realPython() (string, error) {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("no python3 for the baseline: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// benchFirstSession starts a manager and opens its first session on
// backend (which launches the plugin), returning when that began.
func benchFirstSession(ctx context.Context, a *app, backend string) (*session.Manager, *session.Session, time.Time, error) {
	m, err := a.manager()
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	start := time.Now()
	first, err := m.Open(ctx, session.Options{Backend: backend})
	if err != nil {
		m.Shutdown(context.WithoutCancel(ctx))
		return nil, nil, time.Time{}, err
	}
	return m, first, start, nil
}
