package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// leftovers lists what owner id still has on the host: containers
// labelled with it, slots and mounts named after it, its FIFO directory,
// its lock file, processes (the shim) naming it.
func leftovers(ctx context.Context, c *client.Client, id string) []string {
	var out []string
	ctrs, err := c.Containers(ctx, fmt.Sprintf(`labels."mcpruntime.opensandbox/instance"==%q`, id))
	if err != nil {
		return []string{"list containers: " + err.Error()}
	}
	for _, ctr := range ctrs {
		out = append(out, "container "+ctr.ID())
	}
	slots, _ := filepath.Glob(filepath.Join(testenv.Slots, "osb-"+id+"-*"))
	for _, s := range slots {
		out = append(out, "slot "+s)
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), "/slots/osb-"+id+"-") {
		out = append(out, "slot mounts")
	}
	if _, err := os.Stat(filepath.Join(testenv.FIFOs, id)); err == nil {
		out = append(out, "FIFO directory")
	}
	if _, err := os.Stat(owner.LockPath(testenv.OwnersDir, id)); err == nil {
		out = append(out, "lock file")
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "osb-"+id+"-") {
			out = append(out, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// waitGone polls until id has no leftovers, and returns how long that took.
func waitGone(t *testing.T, ctx context.Context, c *client.Client, id string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		left := leftovers(ctx, c, id)
		if len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Errorf("leftovers of killed owner %s still there after %s: %v", id, limit, left)
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cycle is one short session: create, exec, destroy.
func cycle(h *harness, name string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := fmt.Sprintf("%s-%d", name, i)
	if err := h.p.CreateSession(ctx, &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: sdk.Limits{Timeout: 30 * time.Second}}); err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	var out strings.Builder
	var mu sync.Mutex
	res, err := h.p.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: fmt.Sprintf("print(%d * 2)", i)}, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			mu.Lock()
			out.Write(e.Data)
			mu.Unlock()
		}
	})
	if err == nil && (!res.OK() || out.String() != fmt.Sprintf("%d\n", i*2)) {
		err = fmt.Errorf("stdout %q, %s %s", out.String(), res.Error, res.Message)
	}
	if derr := h.p.DestroySession(ctx, id); derr != nil && err == nil {
		err = fmt.Errorf("destroy: %w", derr)
	}
	if err != nil {
		return fmt.Errorf("session %s: %w", id, err)
	}
	return nil
}

// TestInstancesShareHost: two plugin processes (separate workspaces and
// state dirs, one namespace) each run at least 50 short sessions without
// an error while a third is started, given a session with a running
// exec, and SIGKILLed with its children, round after round. Every start
// sweeps: it must remove exactly the killed plugins' orphans (checked
// with a deadline) and nothing of the two live ones.
func TestInstancesShareHost(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	ctx, c := containerdClient(t)
	const minSessions, rounds = 50, 6

	type live struct {
		name     string
		h        *harness
		id       string
		keep     string // a long-lived session
		sessions atomic.Int64
		errs     []error
	}
	// One with a warm pool, one on the cold path (with its anchor).
	lives := []*live{{name: "pooled", h: launch(t, bin, 2, "")}, {name: "cold", h: launch(t, bin, 0, "")}}
	for _, l := range lives {
		var err error
		if l.id, err = testenv.Instance(l.h.p.Pid()); err != nil {
			t.Errorf("%s: %v", l.name, err)
		}
		l.keep = l.h.Session(t, sdk.Limits{})
		l.h.Expect(t, l.keep, "x = 41\n_ = open('live.txt', 'w').write('"+l.name+"')", "")
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, l := range lives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < minSessions || !stop.Load(); i++ {
				if err := cycle(l.h, l.name, i); err != nil {
					l.errs = append(l.errs, err)
				}
				l.sessions.Add(1)
			}
		}()
	}

	prev := ""
	var orphans []int
	var sweepTimes []time.Duration
	// At least `rounds`, and on until both live plugins have run their
	// sessions: the kills and sweeps overlap all of them.
	busy := func() bool {
		for _, l := range lives {
			if l.sessions.Load() < minSessions {
				return true
			}
		}
		return false
	}
	r := 0
	for ; r < rounds || (busy() && r < 40); r++ {
		// No recovery grace: its session container must go with the
		// next start like everything else it left.
		k := launch(t, bin, 1, testenv.ConfigJSONGrace("0s"))
		if prev != "" {
			sweepTimes = append(sweepTimes, waitGone(t, ctx, c, prev, 15*time.Second))
		}
		id, err := testenv.Instance(k.p.Pid())
		if err != nil {
			t.Errorf("round %d: %v", r, err)
		}
		sid := k.Session(t, sdk.Limits{Timeout: time.Minute})
		started := filepath.Join(k.ws, "started")
		go k.p.Execute(context.Background(), &sdk.ExecRequest{SessionID: sid,
			Code: "open('started', 'w').close()\nimport time\ntime.sleep(20)"}, func(sdk.Event) {})
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := os.Stat(started); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the exec did not start", r)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The plugin and its children (its process group) at once.
		if err := syscall.Kill(-k.p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for !k.p.Exited() {
			time.Sleep(10 * time.Millisecond)
		}
		if id != "" {
			left := leftovers(ctx, c, id)
			if len(left) == 0 {
				t.Errorf("round %d: a SIGKILLed plugin cannot clean up, yet it left nothing", r)
			}
			orphans = append(orphans, len(left))
		}
		prev = id
	}
	// The last one's orphans go with the next start too.
	last := launch(t, bin, 0, "")
	if prev != "" {
		sweepTimes = append(sweepTimes, waitGone(t, ctx, c, prev, 15*time.Second))
	}
	last.p.Kill()

	stop.Store(true)
	wg.Wait()
	for _, l := range lives {
		t.Logf("%s plugin: %d sessions, %d errors", l.name, l.sessions.Load(), len(l.errs))
		for i, err := range l.errs {
			if i < 5 {
				t.Errorf("%s plugin: %v", l.name, err)
			}
		}
		if l.sessions.Load() < minSessions {
			t.Errorf("%s plugin ran %d sessions, want %d", l.name, l.sessions.Load(), minSessions)
		}
		// Nothing of the live plugins was touched: their long-lived
		// session keeps its variables and its workspace mount, and their
		// claim is still held.
		l.h.Expect(t, l.keep, "print(x + 1, open('live.txt').read())", "42 "+l.name+"\n")
		l.h.Expect(t, l.keep, "_ = open('after.txt', 'w').write('ok')", "")
		if b, err := os.ReadFile(filepath.Join(l.h.ws, "after.txt")); err != nil || string(b) != "ok" {
			t.Errorf("%s plugin: the session's workspace mount is gone: %q %v", l.name, b, err)
		}
		if l.id != "" && !owner.Alive(testenv.OwnersDir, l.id) {
			t.Errorf("%s plugin: its owner lock is not held", l.name)
		}
	}
	t.Logf("%d plugins killed; leftovers per killed plugin right after its kill: %v; all swept by the next start within %v", r, orphans, sweepTimes)

	// A clean shutdown of the live plugins leaves nothing either.
	for _, l := range lives {
		l.h.p.Kill()
		if l.id != "" {
			if left := leftovers(ctx, c, l.id); len(left) > 0 {
				t.Errorf("%s plugin left after a clean shutdown: %v", l.name, left)
			}
		}
	}
}
