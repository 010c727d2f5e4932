package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkMicroVM measures, in one run and against baselines taken in the
// same run: cold boot (agent ready, kernel ready), a new session's first
// execution from the pool, an execution in an existing session (baseline:
// the same kernel as a host process), snapshot, restore from a standby VM
// (baselines: cold boot, and a cold restore of the same snapshot by a
// backend with restore_standby = 0). Run with -benchtime=1x: each figure
// is a median over its own repetitions.
func BenchmarkMicroVM(b *testing.B) {
	needQEMU(b)
	bin := pluginBinary(b)
	ctx := context.Background()
	agent := filepath.Join(filepath.Dir(bin), cli.AgentName)
	state := b.TempDir()
	configure := func(cfg map[string]any) *backend.Backend {
		be := backend.New()
		js, _ := json.Marshal(cfg)
		if err := be.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: state}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { be.Close(ctx) })
		return be
	}
	be := configure(map[string]any{"agent": agent, "restore_standby": 1})
	// The baseline for restores: a second backend on the same state dir
	// (so it restores the same snapshots) without standbys or pool.
	cold := configure(map[string]any{"agent": agent, "restore_standby": 0, "pool_size": 0})
	ws := b.TempDir()
	waitPool := func() {
		for be.PoolReady() < 1 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // let the refilled VM go idle
	}
	// A user restores a snapshot some time after taking it, not in the
	// same millisecond: restores are measured once the standby is ready
	// and idle.
	waitStandby := func() {
		for be.StandbyReady() < 1 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
	}
	runIn := func(be *backend.Backend, id, code string) {
		res, err := be.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: code}, func(sdk.Event) {})
		if err != nil || !res.OK() {
			b.Fatalf("exec %q: %v %+v", code, err, res)
		}
	}
	run := func(id, code string) { runIn(be, id, code) }
	spec := func(id string) *sdk.SessionSpec {
		return &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: time.Minute}}
	}

	for b.Loop() {
		// Cold boot.
		var agentReady, kernelReady []time.Duration
		for range 3 {
			waitPool()
			t, err := be.MeasureBoot(ctx)
			if err != nil {
				b.Fatal(err)
			}
			agentReady, kernelReady = append(agentReady, t.AgentReady), append(kernelReady, t.KernelReady)
		}
		// New session from the pool, first execution.
		var poolFirst []time.Duration
		for i := range 5 {
			waitPool()
			id := fmt.Sprintf("pool-%d", i)
			start := time.Now()
			if err := be.CreateSession(ctx, spec(id)); err != nil {
				b.Fatal(err)
			}
			run(id, "x = 1")
			poolFirst = append(poolFirst, time.Since(start))
			_ = be.DestroySession(ctx, id)
		}
		// Execution in an existing session.
		waitPool()
		if err := be.CreateSession(ctx, spec("warm")); err != nil {
			b.Fatal(err)
		}
		run("warm", "x = 0")
		waitPool()
		var execs []time.Duration
		for range 30 {
			start := time.Now()
			run("warm", "x += 1")
			execs = append(execs, time.Since(start))
		}
		host := hostKernelExec(b, 30)
		// Snapshot, restore from the standby and, of the same snapshot in
		// the same conditions, a cold restore.
		var snaps, restores, restoreFirst, colds, coldFirst []time.Duration
		var size int64
		restore := func(be *backend.Backend, snap, id string) (ready, first time.Duration) {
			start := time.Now()
			if err := be.Restore(ctx, snap, spec(id)); err != nil {
				b.Fatal(err)
			}
			ready = time.Since(start)
			runIn(be, id, "x += 1")
			first = time.Since(start)
			_ = be.DestroySession(ctx, id)
			return ready, first
		}
		for i := range 5 {
			start := time.Now()
			s, err := be.Snapshot(ctx, "warm")
			if err != nil {
				b.Fatal(err)
			}
			snaps = append(snaps, time.Since(start))
			size = s.SizeBytes
			waitStandby()
			r, f := restore(be, s.ID, fmt.Sprintf("restored-%d", i))
			restores, restoreFirst = append(restores, r), append(restoreFirst, f)
			waitStandby() // its replacement, restored in the background
			r, f = restore(cold, s.ID, fmt.Sprintf("cold-%d", i))
			colds, coldFirst = append(colds, r), append(coldFirst, f)
		}

		boot := median(kernelReady)
		rows := []struct {
			name string
			d    time.Duration
			note string
		}{
			{"boot-agent-ready", median(agentReady), ""},
			{"boot-kernel-ready", boot, "baseline for pool/restore ratios"},
			{"pool-first-exec", median(poolFirst), fmt.Sprintf("%.3fx cold boot", ms(median(poolFirst))/ms(boot))},
			{"exec-in-session", median(execs), fmt.Sprintf("%.1fx host-process kernel (%.2f ms)", ms(median(execs))/ms(host), ms(host))},
			{"snapshot", median(snaps), fmt.Sprintf("%d MiB", size>>20)},
			{"restore", median(restores), fmt.Sprintf("%.3fx cold boot, %.3fx restore-cold (standby VM)", ms(median(restores))/ms(boot), ms(median(restores))/ms(median(colds)))},
			{"restore-first-exec", median(restoreFirst), ""},
			{"restore-cold", median(colds), fmt.Sprintf("%.3fx cold boot (restore_standby = 0)", ms(median(colds))/ms(boot))},
			{"restore-cold-first-exec", median(coldFirst), ""},
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nmicroVM benchmark (accel=%s, medians)\n", be.Accel())
		for _, r := range rows {
			fmt.Fprintf(&sb, "  %-24s %9.1f ms  %s\n", r.name, ms(r.d), r.note)
			b.ReportMetric(ms(r.d), r.name+"-ms")
		}
		// Printed, not b.Log: the testing package cuts benchmark logs at 10 lines.
		fmt.Print(sb.String())
	}
}

// hostKernelExec is the baseline: the same sdk kernel as a plain host
// process, no VM.
func hostKernelExec(b *testing.B, n int) time.Duration {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("no host python3 for the baseline")
	}
	path, err := kernel.Install(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c := exec.Command(py, "-I", "-B", path)
	c.Env = append(os.Environ(), "MCPRUNTIME_WORKSPACE="+b.TempDir())
	k, err := kernel.StartChild(ctx, c, kernel.ChildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Kill(ctx)
	var ds []time.Duration
	for range n {
		start := time.Now()
		if _, err := k.Conn().Exec(ctx, kernel.Request{Code: "x = 1", Timeout: time.Minute}, nil, func(sdk.Event) {}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds)
}
