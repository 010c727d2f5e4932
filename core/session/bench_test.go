package session

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// BenchmarkExecOverhead measures what the core→plugin→kernel path adds to
// an execution of `pass`: each iteration runs `pass` once through the full
// stack (session manager, gRPC to the hostpython plugin process, kernel),
// once on the same kind of kernel driven directly over pipes, and makes one
// bare unary gRPC call (Health) to the same plugin: the transport's floor,
// since every execution needs at least one gRPC round trip. Reported:
// medians of each, the µs added, the µs added beyond the floor, the ratio.
func BenchmarkExecOverhead(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 not on PATH")
	}
	dir := b.TempDir()
	plugins := filepath.Join(dir, "plugins")
	out, err := exec.Command("go", "build", "-o", filepath.Join(plugins, sdk.BinaryPrefix+"hostpython"), "../../examples/plugins/hostpython").CombinedOutput()
	if err != nil {
		b.Fatalf("build plugin: %v\n%s", err, out)
	}
	cfg, err := config.Parse([]byte("runtime {\n  backend = \"hostpython\"\n  plugin_dir = \""+plugins+"\"\n}\n"), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	m := New(cfg, pluginhost.New(cfg, nil), nil, nil)
	defer m.Shutdown(ctx)
	s, err := m.Open(ctx, Options{})
	if err != nil {
		b.Fatal(err)
	}
	kpath, err := kernel.Install(filepath.Join(dir, "kernel"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(py, "-I", "-B", kpath)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	direct, err := kernel.StartChild(ctx, cmd, kernel.ChildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Kill(ctx)
	noop := func(sdk.Event) {}
	viaCore := make([]time.Duration, 0, b.N)
	viaKernel := make([]time.Duration, 0, b.N)
	rtt := make([]time.Duration, 0, b.N)
	p, _, err := s.inst.Get(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := m.Exec(ctx, s, "pass", 0, noop); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := direct.Conn().Exec(ctx, kernel.Request{Code: "pass"}, nil, noop); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := p.Health(ctx); err != nil {
			b.Fatal(err)
		}
		viaCore = append(viaCore, t1.Sub(t0))
		viaKernel = append(viaKernel, t2.Sub(t1))
		rtt = append(rtt, time.Since(t2))
	}
	b.StopTimer()
	mc, mk, mr := median(viaCore), median(viaKernel), median(rtt)
	b.ReportMetric(float64(mc.Nanoseconds())/1e3, "µs/exec-core")
	b.ReportMetric(float64(mk.Nanoseconds())/1e3, "µs/exec-direct")
	b.ReportMetric(float64((mc-mk).Nanoseconds())/1e3, "µs-added")
	b.ReportMetric(float64(mc)/float64(mk), "ratio")
	b.ReportMetric(float64(mr.Nanoseconds())/1e3, "µs/grpc-rtt")
	b.ReportMetric(float64((mc-mk-mr).Nanoseconds())/1e3, "µs-added-beyond-rtt")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
