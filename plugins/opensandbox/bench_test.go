package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/sandbox"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Latency benchmarks, measured through the plugin binary as the core uses
// it (gRPC). Run them together so the ratios compare one run on one
// machine state:
//
//	go test -run '^$' -bench Latency -benchtime 30x
//
// Each sub-benchmark reports its median; the last one reports the ratios
// against the baselines: `ctr run --rm` of the same image, and a native
// `python3 -c` on the host.

var medians = map[string]time.Duration{}

func median(samples []time.Duration) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func report(b *testing.B, name string, samples []time.Duration) {
	m := median(samples)
	medians[name] = m
	b.ReportMetric(float64(m.Microseconds())/1000, "ms/median")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkLatency(b *testing.B) {
	testenv.RequireContainerd(b)
	bin := benchPlugin(b)
	ws := b.TempDir()
	code := "print(6*7)"
	run := func(b *testing.B, p *host.Plugin, id string) {
		res, err := p.Execute(context.Background(), &sdk.ExecRequest{SessionID: id, Code: code}, func(sdk.Event) {})
		if err != nil || !res.OK() {
			b.Fatalf("exec: %v %+v", err, res)
		}
	}
	// start launches the plugin; runtime "" keeps the default ("auto").
	start := func(b *testing.B, pool int, runtime string) *host.Plugin {
		p, err := host.Launch(context.Background(), bin, host.WithStartTimeout(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Kill)
		cfg := testenv.ConfigJSON()
		if runtime != "" {
			cfg = testenv.ConfigJSONRuntime(runtime)
		}
		if err := p.Configure(context.Background(), &sdk.Config{JSON: []byte(cfg), PoolSize: pool, StateDir: filepath.Join(ws, fmt.Sprint(pool))}); err != nil {
			b.Fatal(err)
		}
		return p
	}
	firstExec := func(b *testing.B, p *host.Plugin, settle time.Duration) []time.Duration {
		var samples []time.Duration
		for i := range b.N {
			time.Sleep(settle) // the pool refills between sessions
			id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
			t0 := time.Now()
			if err := p.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
				b.Fatal(err)
			}
			run(b, p, id)
			samples = append(samples, time.Since(t0))
			_ = p.DestroySession(context.Background(), id)
		}
		return samples
	}
	b.Run("pool_session_first_exec", func(b *testing.B) {
		p := start(b, 2, "")
		report(b, "pool", firstExec(b, p, 500*time.Millisecond))
	})
	b.Run("cold_session_first_exec", func(b *testing.B) {
		p := start(b, 0, "")
		report(b, "cold", firstExec(b, p, 50*time.Millisecond))
	})
	// A cold start while another session lives, as when a burst of
	// sessions drained the pool. (With no pool the anchor container keeps
	// the shim running anyway, so this row should match the one above.)
	b.Run("cold_session_first_exec_shim_alive", func(b *testing.B) {
		p := start(b, 0, "")
		keep := fmt.Sprintf("bench-keep-%d", os.Getpid())
		if err := p.CreateSession(context.Background(), &sdk.SessionSpec{ID: keep, Workspace: ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
			b.Fatal(err)
		}
		run(b, p, keep)
		report(b, "cold_shim_alive", firstExec(b, p, 50*time.Millisecond))
	})
	// The same with runc forced: what "auto" gains where crun is usable.
	b.Run("cold_session_first_exec_runc", func(b *testing.B) {
		p := start(b, 0, "runc")
		report(b, "cold_runc", firstExec(b, p, 50*time.Millisecond))
	})
	b.Run("exec_in_session", func(b *testing.B) {
		p := start(b, 0, "")
		id := "bench-exec"
		if err := p.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
			b.Fatal(err)
		}
		run(b, p, id)
		var samples []time.Duration
		for range b.N {
			t0 := time.Now()
			run(b, p, id)
			samples = append(samples, time.Since(t0))
		}
		report(b, "exec", samples)
	})
	b.Run("baseline_ctr_run_rm", func(b *testing.B) {
		image := sandbox.DefaultSettings().Image
		var samples []time.Duration
		for i := range b.N {
			t0 := time.Now()
			out, err := exec.Command("ctr", "-a", daemon.DefaultAddress, "-n", testenv.Namespace, "run", "--rm",
				"--snapshotter", "overlayfs", image, fmt.Sprintf("bench-ctr-%d-%d", os.Getpid(), i),
				"/usr/bin/python3", "-c", code).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "42" {
				b.Fatalf("ctr run: %v %s", err, out)
			}
			samples = append(samples, time.Since(t0))
		}
		report(b, "ctr", samples)
	})
	b.Run("baseline_native_python", func(b *testing.B) {
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			if py, err = exec.LookPath("python3"); err != nil {
				b.Skip("no python3 on the host")
			}
		}
		var samples []time.Duration
		for range b.N {
			t0 := time.Now()
			if out, err := exec.Command(py, "-c", code).Output(); err != nil || strings.TrimSpace(string(out)) != "42" {
				b.Fatalf("python3 -c: %v %s", err, out)
			}
			samples = append(samples, time.Since(t0))
		}
		report(b, "python", samples)
	})
	b.Run("ratios", func(b *testing.B) {
		ratio := func(a, c string) float64 {
			if medians[c] == 0 {
				return 0
			}
			return float64(medians[a]) / float64(medians[c])
		}
		for _, r := range [][2]string{{"pool", "ctr"}, {"pool", "python"}, {"cold", "ctr"}, {"cold", "python"}, {"cold", "cold_runc"}, {"cold_shim_alive", "ctr"}, {"exec", "python"}} {
			b.ReportMetric(ratio(r[0], r[1]), r[0]+"/"+r[1])
		}
		b.ReportMetric(0, "ns/op")
		b.Logf("medians: %v", medians)
	})
}

func benchPlugin(b *testing.B) string {
	if p := os.Getenv("OPENSANDBOX_PLUGIN_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(b.TempDir(), "mcpruntime-plugin-opensandbox")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build plugin: %v\n%s", err, out)
	}
	return bin
}
