package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Latency benchmarks through the plugin binary as the core uses it (gRPC),
// against the private 3-agent cluster on loopback:
//
//	go test -run '^$' -bench Latency -benchtime 20x
//
// Each sub-benchmark reports its median (ms/median). The targets:
// warm pool -> first exec <= 50 ms, cold placement -> first exec <= 1 s,
// exec in a session <= 5 ms.

func median(samples []time.Duration) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func report(b *testing.B, samples []time.Duration) {
	b.ReportMetric(float64(median(samples).Microseconds())/1000, "ms/median")
	b.ReportMetric(float64(slices.Max(samples).Microseconds())/1000, "ms/max")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkLatency(b *testing.B) {
	requireCluster(b)
	ws := b.TempDir()
	start := func(b *testing.B, pool int) *host.Plugin {
		p, err := host.Launch(context.Background(), buildPlugin(b), host.WithStartTimeout(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Kill)
		if err := p.Configure(context.Background(), &sdk.Config{JSON: []byte(configJSON(nil)), PoolSize: pool, StateDir: filepath.Join(b.TempDir(), "state")}); err != nil {
			b.Fatal(err)
		}
		return p
	}
	run := func(b *testing.B, p *host.Plugin, id string) {
		res, err := p.Execute(context.Background(), &sdk.ExecRequest{SessionID: id, Code: "print(6*7)"}, func(sdk.Event) {})
		if err != nil || !res.OK() {
			b.Fatalf("exec: %v %+v", err, res)
		}
	}
	firstExec := func(b *testing.B, p *host.Plugin, settle func()) []time.Duration {
		var samples []time.Duration
		for i := range b.N {
			settle()
			id := fmt.Sprintf("bench-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6, i)
			t0 := time.Now()
			if err := p.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
				b.Fatal(err)
			}
			run(b, p, id)
			samples = append(samples, time.Since(t0))
			if err := p.DestroySession(context.Background(), id); err != nil {
				b.Fatal(err)
			}
		}
		return samples
	}
	b.Run("pool_session_first_exec", func(b *testing.B) {
		p := start(b, 2)
		// The pool refills one allocation at a time (a placement and a
		// kernel start, ~0.3 s here): leave it time to hold two again.
		report(b, firstExec(b, p, func() { time.Sleep(1500 * time.Millisecond) }))
	})
	b.Run("cold_session_first_exec", func(b *testing.B) {
		p := start(b, 0)
		report(b, firstExec(b, p, func() { time.Sleep(100 * time.Millisecond) }))
	})
	b.Run("exec_in_session", func(b *testing.B) {
		p := start(b, 0)
		id := fmt.Sprintf("bench-exec-%d", os.Getpid())
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
		report(b, samples)
	})
}
