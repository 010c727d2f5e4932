package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

// local is a backend in the test process (its standby count is not
// visible through the plugin protocol except in Health's message).
type local struct {
	t     *testing.T
	be    *backend.Backend
	state string
}

func newLocal(t *testing.T, cfg map[string]any) *local {
	t.Helper()
	cfg["agent"] = filepath.Join(filepath.Dir(pluginBinary(t)), cli.AgentName)
	state := t.TempDir()
	var opts []backend.Option
	if os.Getenv("MICROVM_TEST_LOG") != "" {
		opts = append(opts, backend.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr})))
	}
	be := backend.New(opts...)
	js, _ := json.Marshal(cfg)
	if err := be.Configure(context.Background(), &sdk.Config{JSON: js, PoolSize: 1, StateDir: state}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { be.Close(context.Background()) })
	return &local{t: t, be: be, state: state}
}

func (l *local) spec(id, ws string, env map[string]string) *sdk.SessionSpec {
	return &sdk.SessionSpec{ID: id, Workspace: ws, Env: env, Limits: sdk.Limits{Timeout: 2 * time.Minute}}
}

func (l *local) expect(id, code, want string) {
	l.t.Helper()
	res, out, err := execute(l.be, id, code, sdk.EventStdout, sdk.EventStderr)
	if err != nil || !res.OK() || out != want {
		l.t.Fatalf("%s: %q: err=%v ok=%v out=%q want %q", id, code, err, res != nil && res.OK(), out, want)
	}
}

func (l *local) output(id, code string) string {
	l.t.Helper()
	res, out, err := execute(l.be, id, code, sdk.EventStdout)
	if err != nil || !res.OK() {
		l.t.Fatalf("%s: %q: %v %+v", id, code, err, res)
	}
	return out
}

// vmms are the VMM processes running in this backend's run directory.
func (l *local) vmms() []int { return vmmsUnder(backend.RunRoot(l.state)) }

func vmmsUnder(root string) []int {
	var pids []int
	for _, pid := range ourVMMs() {
		if cl, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline")); err == nil && strings.Contains(string(cl), root+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStandbyRestore: a restore takes the snapshot's standby and sees the
// snapshot's variables with its own env, cwd and workspace; a second
// restore right after it goes cold (one standby, never shared); a third
// takes the refilled standby; of two concurrent restores one takes it and
// the other goes cold, each on a VM of its own; all forks draw different
// random numbers. Deleting the snapshot drops its standby, and Close leaves no
// VMM behind.
func TestStandbyRestore(t *testing.T) {
	needQEMU(t)
	l := newLocal(t, map[string]any{}) // restore_standby defaults to 1
	ctx := context.Background()
	origWS := t.TempDir()
	if err := l.be.CreateSession(ctx, l.spec("orig", origWS, map[string]string{"WHO": "orig"})); err != nil {
		t.Fatal(err)
	}
	l.expect("orig", "import random, os\ncounter = 10\nwith open('snap.txt', 'w') as f:\n    f.write('old session')", "")
	snap, err := l.be.Snapshot(ctx, "orig")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	names := "print(sorted(k for k in globals() if not k.startswith('__')))"
	origNames := l.output("orig", names)
	waitFor(t, "the standby", 3*time.Minute, func() bool { return l.be.StandbyReady() == 1 })

	forkWS := t.TempDir()
	if err := os.WriteFile(filepath.Join(forkWS, "mine.txt"), []byte("fork"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := "print(counter, os.environ.get('WHO'), os.getcwd(), sorted(os.listdir('.')), os.listdir('/mcpruntime/lib'))"
	restore := func(id string) {
		t.Helper()
		if err := l.be.Restore(ctx, snap.ID, l.spec(id, forkWS, map[string]string{"WHO": id})); err != nil {
			t.Fatalf("restore %s: %v", id, err)
		}
	}

	restore("fork-a")
	if n := l.be.StandbyReady(); n != 0 {
		t.Fatalf("%d standby VM(s) ready after the restore: it did not take the standby", n)
	}
	// The replacement is restored a moment later: this one is cold.
	restore("fork-b")
	for _, id := range []string{"fork-a", "fork-b"} {
		l.expect(id, state, "10 "+id+" /workspace ['mine.txt'] []\n")
		if got := l.output(id, names); got != origNames {
			t.Fatalf("%s globals %s, want the snapshot's %s", id, got, origNames)
		}
	}
	waitFor(t, "the replacement standby", 3*time.Minute, func() bool { return l.be.StandbyReady() == 1 })
	restore("fork-c")
	if n := l.be.StandbyReady(); n != 0 {
		t.Fatalf("%d standby VM(s) ready after the third restore: it did not take the refill", n)
	}
	l.expect("fork-c", state, "10 fork-c /workspace ['mine.txt'] []\n")

	// Two restores at once: one takes the standby, the other restores
	// cold; each has a VM of its own.
	waitFor(t, "the standby after fork-c", 3*time.Minute, func() bool { return l.be.StandbyReady() == 1 })
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{"fork-d", "fork-e"} {
		wg.Go(func() { errs[i] = l.be.Restore(ctx, snap.ID, l.spec(id, forkWS, map[string]string{"WHO": id})) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent restores: %v, %v", errs[0], errs[1])
	}
	l.expect("fork-d", "counter = 'd'", "")
	l.expect("fork-e", "print(counter, os.environ['WHO'])", "10 fork-e\n")
	l.expect("fork-d", "print(counter, os.environ['WHO'])", "d fork-d\n")

	forks := []string{"fork-a", "fork-b", "fork-c", "fork-d", "fork-e"}
	seen := map[string]string{}
	for _, id := range forks {
		for _, r := range strings.Fields(l.output(id, "print(random.random(), os.urandom(8).hex())")) {
			if other, ok := seen[r]; ok {
				t.Fatalf("%s and %s drew the same random value %s", other, id, r)
			}
			seen[r] = id
		}
	}
	l.expect("fork-a", "counter += 1; print(counter)", "11\n")
	l.expect("orig", "print(counter, open('snap.txt').read())", "10 old session\n")

	// A deleted snapshot: its restore fails as before and its standby goes.
	waitFor(t, "the standby after the concurrent restores", 3*time.Minute, func() bool { return l.be.StandbyReady() == 1 })
	before := len(l.vmms())
	if err := os.RemoveAll(filepath.Join(l.state, "snapshots", snap.ID)); err != nil {
		t.Fatal(err)
	}
	if err := l.be.Restore(ctx, snap.ID, l.spec("fork-d", forkWS, nil)); err == nil {
		t.Fatal("restore of a deleted snapshot succeeded")
	}
	if n := l.be.StandbyReady(); n != 0 {
		t.Fatalf("%d standby VM(s) kept for a deleted snapshot", n)
	}
	waitFor(t, "the standby VMM to exit", 15*time.Second, func() bool { return len(l.vmms()) == before-1 })

	// Sessions and Close: nothing left running.
	for _, id := range forks {
		if err := l.be.DestroySession(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Restored at once: the standby in flight is taken (and its warm-up
	// cut short), then refilled.
	snap2, err := l.be.Snapshot(ctx, "orig")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.be.Restore(ctx, snap2.ID, l.spec("fork-f", forkWS, nil)); err != nil {
		t.Fatal(err)
	}
	l.expect("fork-f", "print(counter, sorted(os.listdir('.')))", "10 ['mine.txt']\n")
	waitFor(t, "a standby for the new snapshot", 3*time.Minute, func() bool { return l.be.StandbyReady() == 1 })
	if err := l.be.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := l.vmms(); len(left) != 0 {
		t.Fatalf("VMM processes outlived Close: %v", left)
	}
}

// TestStandbyDisabled: with restore_standby = 0 no standby VM is started
// and restores work cold.
func TestStandbyDisabled(t *testing.T) {
	needQEMU(t)
	l := newLocal(t, map[string]any{"restore_standby": 0})
	ctx := context.Background()
	ws := t.TempDir()
	if err := l.be.CreateSession(ctx, l.spec("orig", ws, nil)); err != nil {
		t.Fatal(err)
	}
	l.expect("orig", "import random, os\ncounter = 7", "")
	waitFor(t, "the pool", 3*time.Minute, func() bool { return l.be.PoolReady() == 1 })
	snap, err := l.be.Snapshot(ctx, "orig")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if n, vms := l.be.StandbyReady(), l.vmms(); n != 0 || len(vms) != 2 {
		t.Fatalf("restore_standby = 0: %d standby VM(s), %d VMMs running (want the session's and the pooled one)", n, len(vms))
	}
	for _, id := range []string{"fork-a", "fork-b"} {
		if err := l.be.Restore(ctx, snap.ID, l.spec(id, ws, nil)); err != nil {
			t.Fatalf("restore: %v", err)
		}
		l.expect(id, "counter += 1; print(counter)", "8\n")
	}
	a, b := l.output("fork-a", "print(random.random())"), l.output("fork-b", "print(random.random())")
	if a == b {
		t.Fatalf("cold forks share random state: %q", a)
	}
}

// TestStandbyCleanup: a plugin killed with SIGKILL while a standby VM waits
// leaves its VMMs for recovery; the next plugin, recovering nothing,
// removes all of them (standby included) and its run files.
func TestStandbyCleanup(t *testing.T) {
	needQEMU(t)
	state := t.TempDir()
	h := launch(t, nil, state)
	id := h.session(sdk.Limits{})
	h.expect(id, "x = 1", "")
	ctx := context.Background()
	if _, err := h.p.Snapshot(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby", 3*time.Minute, func() bool {
		hl, err := h.p.Health(ctx)
		return err == nil && strings.Contains(hl.Message, "1 restore standby")
	})
	root := backend.RunRoot(state)
	before := vmmsUnder(root)
	if len(before) < 3 {
		t.Fatalf("%d VMMs running; want the session's, the pooled and the standby one", len(before))
	}
	killPlugin(t, h)
	h2 := launch(t, nil, state)
	if _, err := h2.p.RecoverSessions(ctx, nil); err != nil {
		t.Fatalf("recover nothing: %v", err)
	}
	waitFor(t, "the dead plugin's VMMs to be removed", 15*time.Second, func() bool {
		for _, pid := range before {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
	waitRootHolds(t, root, h2.p.Pid())
	h2.expect(h2.session(sdk.Limits{}), "print(2)", "2\n")
}
