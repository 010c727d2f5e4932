package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/plugins/nomad/internal/testcluster"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// ourJobs lists the ids of the cluster's jobs whose meta names owner.
func ourJobs(t testing.TB, c *api.Client, owner string) []string {
	t.Helper()
	jobs, _, err := c.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, &api.QueryOptions{Prefix: "mcpruntime-"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range jobs {
		if j.Meta["mcpruntime_owner"] == owner {
			out = append(out, j.ID)
		}
	}
	return out
}

// ownerOf is the owner meta of the job running session sid.
func ownerOf(t testing.TB, c *api.Client, sid string) string {
	t.Helper()
	jobs, _, err := c.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, &api.QueryOptions{Prefix: "mcpruntime-"})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Meta["mcpruntime_session"] == sid {
			return j.Meta["mcpruntime_owner"]
		}
		if v, _, err := c.Variables().Read("mcpruntime/sessions/"+j.ID, nil); err == nil && v != nil && v.Items["session"] == sid {
			return j.Meta["mcpruntime_owner"]
		}
	}
	t.Fatalf("no job runs session %s", sid)
	return ""
}

// TestPlacementSpread runs 20 sessions at once and requires the scheduler
// to have used both client nodes.
func TestPlacementSpread(t *testing.T) {
	requireCluster(t)
	c := nomadClient(t)
	h := launch(t, 2, "")
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = fmt.Sprintf("spread-%d-%d", time.Now().UnixNano()%1e6, i)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := h.p.CreateSession(ctx, &sdk.SessionSpec{ID: ids[i], Workspace: h.ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
				errs <- fmt.Errorf("create %s: %w", ids[i], err)
				return
			}
			res, err := h.p.Execute(ctx, &sdk.ExecRequest{SessionID: ids[i], Code: fmt.Sprintf("v = %d\nprint(v)", i)}, func(sdk.Event) {})
			if err != nil || !res.OK() {
				errs <- fmt.Errorf("exec in %s: %v %+v", ids[i], err, res)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	nodes := sessionNodes(t, c)
	per := map[string]int{}
	for _, id := range ids {
		node, ok := nodes[id]
		if !ok {
			t.Fatalf("session %s has no running allocation", id)
		}
		per[node]++
	}
	t.Logf("sessions per node: %v", per)
	if per[testcluster.NodeName(1)] == 0 || per[testcluster.NodeName(2)] == 0 {
		t.Fatalf("20 sessions all on one node: %v", per)
	}
	for _, id := range ids {
		if err := h.p.DestroySession(context.Background(), id); err != nil {
			t.Errorf("destroy %s: %v", id, err)
		}
	}
}

// TestNodeLoss kills the client agent under some sessions: each of them
// reports state_lost within 30 s and carries on, and new sessions go to
// the surviving node.
func TestNodeLoss(t *testing.T) {
	cl := requireCluster(t)
	c := nomadClient(t)
	h := launch(t, 0, "")
	var ids []string
	var nodes map[string]string
	// Spread placement puts sessions on both nodes; create until both
	// have at least one.
	for len(ids) < 8 {
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "state = 'kept'", "")
		ids = append(ids, id)
		nodes = sessionNodes(t, c)
		per := map[string]int{}
		for _, id := range ids {
			per[nodes[id]]++
		}
		if len(ids) >= 4 && per[testcluster.NodeName(1)] > 0 && per[testcluster.NodeName(2)] > 0 {
			break
		}
	}
	victim, survivor := 1, 2
	var onVictim, onSurvivor []string
	for _, id := range ids {
		switch nodes[id] {
		case testcluster.NodeName(victim):
			onVictim = append(onVictim, id)
		case testcluster.NodeName(survivor):
			onSurvivor = append(onSurvivor, id)
		}
	}
	if len(onVictim) == 0 || len(onSurvivor) == 0 {
		t.Fatalf("sessions not on both nodes: %v", nodes)
	}
	if err := cl.KillClient(victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Restart(); err != nil {
			t.Errorf("restart the killed client: %v", err)
		}
	})
	killed := time.Now()
	for _, id := range onVictim {
		o := h.Exec(t, id, "print(globals().get('state'))")
		if !o.Result.StateLost {
			t.Fatalf("session %s on the killed node: %+v (stdout %q), want state_lost", id, o.Result, o.Stdout)
		}
		t.Logf("session %s: state_lost after %s: %s", id, time.Since(killed).Round(time.Millisecond), o.Result.Message)
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("state_lost reported %s after the node died, want within 30s", time.Since(killed))
		}
		// The session carries on, on a fresh kernel.
		h.Expect(t, id, "print(globals().get('state'))", "None\n")
	}
	for _, id := range onSurvivor {
		h.Expect(t, id, "print(state)", "kept\n")
	}
	fresh := h.Session(t, sdk.Limits{})
	h.Expect(t, fresh, "print('placed')", "placed\n")
	nodes = sessionNodes(t, c)
	if nodes[fresh] != testcluster.NodeName(survivor) {
		t.Fatalf("new session on %q, want the surviving node %s", nodes[fresh], testcluster.NodeName(survivor))
	}
	for _, id := range onVictim {
		if nodes[id] != testcluster.NodeName(survivor) {
			t.Fatalf("session %s carried on on %q, want %s", id, nodes[id], testcluster.NodeName(survivor))
		}
	}
}

// TestRecoverAndCleanUp kills the plugin with SIGKILL: a new plugin on the
// same state directory recovers the session from Nomad's state (variables
// intact), and once it shuts down no job of the owner is left.
func TestRecoverAndCleanUp(t *testing.T) {
	requireCluster(t)
	c := nomadClient(t)
	state := t.TempDir()
	h := launch(t, 1, state)
	pooled := h.Session(t, sdk.Limits{})
	h.Expect(t, pooled, "x = 41", "")
	cold := h.Session(t, sdk.Limits{MemoryBytes: 2 << 30}) // above the pool's: placed for the session
	h.Expect(t, cold, "y = 1", "")
	forgotten := h.Session(t, sdk.Limits{})
	h.Expect(t, forgotten, "z = 1", "")
	owner := ownerOf(t, c, pooled)
	if err := syscall.Kill(-h.p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to exit", 30*time.Second, h.p.Exited)

	h2 := launch(t, 1, state)
	h2.ws, h2.Workspace = h.ws, h.ws
	rec, err := h2.p.RecoverSessions(context.Background(), []*sdk.SessionSpec{
		{ID: pooled, Workspace: h.ws, Limits: sdk.Limits{Timeout: 30 * time.Second}},
		{ID: cold, Workspace: h.ws, Limits: sdk.Limits{Timeout: 30 * time.Second, MemoryBytes: 2 << 30}},
		{ID: "never-existed", Workspace: h.ws},
	})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if len(rec) != 3 || !rec[0].Recovered || !rec[1].Recovered || rec[2].Recovered || rec[2].Reason == "" {
		t.Fatalf("recovered: %+v", rec)
	}
	h2.Expect(t, pooled, "print(x + 1)", "42\n")
	h2.Expect(t, cold, "print(y)", "1\n")
	if len(ourJobs(t, c, owner)) == 0 {
		t.Fatal("no jobs of the owner while its sessions run")
	}
	// The shutdown (the core's daemon stop) purges every job of the
	// owner: the recovered sessions', the pool's and the forgotten one's.
	h2.p.Kill()
	if left := ourJobs(t, c, owner); len(left) > 0 {
		t.Fatalf("jobs left after the plugin stopped: %v", left)
	}
}
