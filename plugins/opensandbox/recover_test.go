package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// killPlugin SIGKILLs the plugin and its process group, as a crash would
// end it, and waits until it is gone.
func killPlugin(t *testing.T, h *harness) {
	t.Helper()
	if err := syscall.Kill(-h.p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to exit", 30*time.Second, h.p.Exited)
}

// sessionContainer finds the container owner id created for session sid
// (its slot records the session).
func sessionContainer(t *testing.T, ctx context.Context, c *client.Client, owner, sid string) client.Container {
	t.Helper()
	ctrs, err := c.Containers(ctx, fmt.Sprintf(`labels."mcpruntime.opensandbox/instance"==%q`, owner))
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range ctrs {
		b, err := os.ReadFile(filepath.Join(testenv.Slots, ctr.ID(), "session.json"))
		if err != nil {
			continue
		}
		var rec struct{ ID string }
		if json.Unmarshal(b, &rec) == nil && rec.ID == sid {
			return ctr
		}
	}
	t.Fatalf("no container of owner %s serves session %s", owner, sid)
	return nil
}

// removeCtr deletes a container and its task, as an operator would.
func removeCtr(t *testing.T, ctx context.Context, ctr client.Container) {
	t.Helper()
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			t.Fatalf("delete task: %v", err)
		}
	} else if !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	if err := ctr.Delete(ctx); err != nil {
		t.Fatalf("delete container: %v", err)
	}
}

// TestRecoverAfterKill: the plugin is SIGKILLed with two sessions; one
// session's container is removed meanwhile. The next plugin process
// recovers the first with its variables, its kernel and its workspace
// mount, and reports the second not recovered, with a reason.
func TestRecoverAfterKill(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	ctx, c := containerdClient(t)

	h := launch(t, bin, 1, "")
	limits := sdk.Limits{Timeout: 30 * time.Second}
	kept := h.Session(t, limits)
	h.Expect(t, kept, "x = 41", "")
	gone := h.Session(t, limits)
	h.Expect(t, gone, "y = 1", "")
	dead := h.Session(t, limits)
	h.Expect(t, dead, "z = 1", "")
	// The core forgets this one before the crash (it is not offered for
	// recovery): nobody will recover its container.
	forgotten := h.Session(t, limits)
	h.Expect(t, forgotten, "w = 1", "")
	old, err := testenv.Instance(h.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	killPlugin(t, h)
	forgottenCtr := sessionContainer(t, ctx, c, old, forgotten)
	removeCtr(t, ctx, sessionContainer(t, ctx, c, old, gone))
	// The third session's kernel dies while no plugin runs; its
	// container stays.
	deadCtr := sessionContainer(t, ctx, c, old, dead)
	task, err := deadCtr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited

	h2 := launch(t, bin, 1, "")
	h2.ws, h2.Workspace = h.ws, h.ws
	rec, err := h2.p.RecoverSessions(context.Background(), []*sdk.SessionSpec{
		{ID: kept, Workspace: h.ws, Limits: limits},
		{ID: gone, Workspace: h.ws, Limits: limits},
		{ID: dead, Workspace: h.ws, Limits: limits},
	})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if len(rec) != 3 || rec[0].ID != kept || !rec[0].Recovered {
		t.Fatalf("session %s not recovered: %+v", kept, rec)
	}
	if rec[1].ID != gone || rec[1].Recovered || rec[1].Reason == "" {
		t.Fatalf("session %s whose container was removed: %+v, want not recovered with a reason", gone, rec[1])
	}
	t.Logf("container removed: %s", rec[1].Reason)
	// Recovered promises the variables: a container without its kernel
	// is not recovered, and goes.
	if rec[2].ID != dead || rec[2].Recovered || !strings.Contains(rec[2].Reason, "kernel") {
		t.Fatalf("session %s whose kernel died: %+v, want not recovered with a reason", dead, rec[2])
	}
	t.Logf("kernel died: %s", rec[2].Reason)
	if _, err := c.LoadContainer(ctx, deadCtr.ID()); !errdefs.IsNotFound(err) {
		t.Errorf("container %s of the session whose kernel died: %v, want removed", deadCtr.ID(), err)
	}
	// The same core restarted the plugin and offered every session it
	// holds: the forgotten session's container goes now, not after its
	// recovery grace (60s).
	waitFor(t, "the container of a session its core no longer holds to go", 20*time.Second, func() bool {
		_, err := c.LoadContainer(ctx, forgottenCtr.ID())
		return errdefs.IsNotFound(err)
	})

	o := h2.Exec(t, kept, "print(x + 1)")
	if !o.Result.OK() || o.Stdout != "42\n" || o.Result.StateLost {
		t.Fatalf("recovered session: stdout %q, state_lost %v, %+v", o.Stdout, o.Result.StateLost, o.Result)
	}
	// The workspace mount came along, and the container is the new
	// process's now: its clean shutdown removes it.
	h2.Expect(t, kept, "_ = open('recovered.txt', 'w').write('yes')", "")
	if b, err := os.ReadFile(filepath.Join(h.ws, "recovered.txt")); err != nil || string(b) != "yes" {
		t.Fatalf("workspace of the recovered session: %q %v", b, err)
	}
	inst, err := testenv.Instance(h2.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	ctr := sessionContainer(t, ctx, c, inst, kept)
	h2.p.Kill()
	if _, err := c.LoadContainer(ctx, ctr.ID()); !errdefs.IsNotFound(err) {
		t.Errorf("recovered container %s after a clean shutdown: %v, want removed", ctr.ID(), err)
	}
}

// TestRecoverInterruptsBusyKernel: the plugin dies while the session runs
// code; the recovered kernel is interrupted, keeps its variables, and the
// output of the dead execution does not leak into the next one.
func TestRecoverInterruptsBusyKernel(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	h := launch(t, bin, 0, "")
	limits := sdk.Limits{Timeout: time.Minute}
	id := h.Session(t, limits)
	h.Expect(t, id, "x = 41", "")
	go h.p.Execute(context.Background(), &sdk.ExecRequest{SessionID: id,
		Code: "import time\nopen('busy', 'w').close()\nwhile True:\n    print('old output')\n    time.sleep(0.01)"}, func(sdk.Event) {})
	waitFor(t, "the execution to start", time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(h.ws, "busy"))
		return err == nil
	})
	killPlugin(t, h)

	h2 := launch(t, bin, 0, "")
	h2.ws, h2.Workspace = h.ws, h.ws
	rec, err := h2.p.RecoverSessions(context.Background(), []*sdk.SessionSpec{{ID: id, Workspace: h.ws, Limits: limits}})
	if err != nil || len(rec) != 1 || !rec[0].Recovered {
		t.Fatalf("recover: %+v %v", rec, err)
	}
	o := h2.Exec(t, id, "print(x + 1)")
	if !o.Result.OK() || o.Stdout != "42\n" || o.Result.StateLost {
		t.Fatalf("recovered session: stdout %q, %+v", o.Stdout, o.Result)
	}
}

// TestUnrecoveredSessionSwept: a killed plugin's session container is
// kept through its recovery grace, then removed by the sweep of the next
// plugin process, which never recovers it; the pooled container of the
// dead plugin goes at once.
func TestUnrecoveredSessionSwept(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	ctx, c := containerdClient(t)
	const grace = 4 * time.Second

	h := launch(t, bin, 1, testenv.ConfigJSONGrace(grace.String()))
	id := h.Session(t, sdk.Limits{Timeout: 30 * time.Second})
	h.Expect(t, id, "x = 1", "")
	old, err := testenv.Instance(h.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	ctr := sessionContainer(t, ctx, c, old, id)
	waitFor(t, "the pool to fill", time.Minute, func() bool { return countOwned(t, c, ctx, old) >= 2 })
	killPlugin(t, h)

	// The next plugin's sweep (its own grace does not matter: the
	// container's creator set it) stamps the container orphaned and keeps
	// it, while the pooled one goes.
	launch(t, bin, 0, "")
	stamp := filepath.Join(testenv.Slots, ctr.ID(), "orphaned")
	waitFor(t, "the sweep to find the orphaned session container", 30*time.Second, func() bool {
		_, err := os.Stat(stamp)
		return err == nil
	})
	waitFor(t, "the pooled container of the dead plugin to be swept", 30*time.Second, func() bool {
		return countOwned(t, c, ctx, old) == 1
	})
	if _, err := c.LoadContainer(ctx, ctr.ID()); err != nil {
		t.Fatalf("session container within its recovery grace: %v, want kept", err)
	}
	start := time.Now()
	waitFor(t, "the unrecovered session container to be swept", 30*time.Second+grace, func() bool {
		return len(leftovers(ctx, c, old)) == 0
	})
	t.Logf("swept %v after the grace was noticed (grace %v)", time.Since(start), grace)
}
