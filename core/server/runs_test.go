package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/runstore"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// fakeRunner records one reply and one step per call, then either waits
// to be cancelled (block) or returns.
type fakeRunner struct {
	block bool
	specs chan RunSpec
}

func (f *fakeRunner) run(ctx context.Context, spec RunSpec) (any, error) {
	f.specs <- spec
	turn := len(spec.History) + 1
	if err := spec.OnReply(ctx, turn, "```python\nprint(1)\n```"); err != nil {
		return nil, err
	}
	n := 1
	for _, t := range spec.History {
		n += len(t.Steps)
	}
	if err := spec.OnStep(ctx, turn, &agent.Step{N: n, Code: "print(1)\n", Stdout: "1\n", Result: &sdk.ExecResult{}}); err != nil {
		return nil, err
	}
	if f.block {
		<-ctx.Done()
		return &agent.Result{Error: ctx.Err().Error()}, nil
	}
	return &agent.Result{Answer: "1", Success: true}, nil
}

// runsServer is a server whose runs are kept in dir.
func runsServer(t *testing.T, dir string, f *fakeRunner) *Server {
	t.Helper()
	st, err := runstore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(session.New(&config.Config{}, nil, nil, nil), WithRunner(&Runner{Run: f.run, Store: st}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *Server, method, path, body string, out any) int {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, r)
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, rec.Code, rec.Body, err)
		}
	}
	return rec.Code
}

// waitRun polls run id until cond holds.
func waitRun(t *testing.T, srv *Server, id string, cond func(Run) bool) Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var run Run
		call(t, srv, "GET", "/v1/runs/"+id, "", &run)
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %+v", id, run)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A run whose process died is listed interrupted with its steps by the
// next server, and resuming it continues from its history to done.
func TestRunsSurviveTheirProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// What a server killed mid-run leaves: a running run with one reply and
	// one step, and no owner alive.
	dead, err := runstore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	reply := "```python\nx = 41\nprint(x)\n```"
	if err := dead.Create(ctx, runstore.Run{ID: "r-dead", Task: "count", Session: "s-1", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := dead.AppendReply(ctx, "r-dead", 1, reply); err != nil {
		t.Fatal(err)
	}
	if err := dead.AppendStep(ctx, "r-dead", 1, &agent.Step{N: 1, Code: "x = 41\nprint(x)\n", Stdout: "41\n"}); err != nil {
		t.Fatal(err)
	}
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}

	f := &fakeRunner{specs: make(chan RunSpec, 1)}
	srv := runsServer(t, dir, f)
	var list []Run
	if code := call(t, srv, "GET", "/v1/runs", "", &list); code != 200 || len(list) != 1 || list[0].ID != "r-dead" || list[0].Status != "interrupted" || list[0].Steps != nil {
		t.Fatalf("list after the crash: %d %+v", code, list)
	}
	var run Run
	call(t, srv, "GET", "/v1/runs/r-dead", "", &run)
	if run.Status != "interrupted" || len(run.Steps) != 1 || run.Steps[0].Stdout != "41\n" || run.Steps[0].Reply != reply || run.Steps[0].Turn != 1 || run.Steps[0].N != 1 {
		t.Fatalf("interrupted run: %+v", run)
	}
	if code := call(t, srv, "POST", "/v1/runs/r-dead/resume", "{}", &run); code != http.StatusAccepted || run.Status != "running" {
		t.Fatalf("resume: %d %+v", code, run)
	}
	spec := <-f.specs
	if spec.ID != "r-dead" || spec.Task != "count" || spec.Session != "s-1" || len(spec.History) != 1 || spec.History[0].Reply != reply || spec.History[0].Steps[0].Stdout != "41\n" {
		t.Fatalf("resumed spec %+v", spec)
	}
	run = waitRun(t, srv, "r-dead", func(r Run) bool { return r.Status != "running" })
	if run.Status != "done" || len(run.Steps) != 2 || run.Steps[1].Turn != 2 || run.Steps[1].N != 2 || !strings.Contains(string(run.Result), `"answer":"1"`) {
		t.Fatalf("resumed run: %+v", run)
	}
	var e APIError
	if code := call(t, srv, "POST", "/v1/runs/r-dead/resume", "{}", &e); code != http.StatusConflict {
		t.Fatalf("resuming a done run: %d %+v", code, e)
	}
	if code := call(t, srv, "POST", "/v1/runs/r-nope/resume", "{}", &e); code != http.StatusNotFound {
		t.Fatalf("resuming an unknown run: %d %+v", code, e)
	}
}

// Shutting down checkpoints a running run as interrupted (resumable); a
// run its user cancelled stays cancelled.
func TestShutdownInterruptsRuns(t *testing.T) {
	dir := t.TempDir()
	f := &fakeRunner{block: true, specs: make(chan RunSpec, 2)}
	srv := runsServer(t, dir, f)
	var kept, dropped Run
	if code := call(t, srv, "POST", "/v1/runs", `{"task":"keep going"}`, &kept); code != http.StatusAccepted || kept.Session == "" {
		t.Fatalf("start: %d %+v", code, kept)
	}
	call(t, srv, "POST", "/v1/runs", `{"task":"stop it"}`, &dropped)
	for _, id := range []string{kept.ID, dropped.ID} {
		waitRun(t, srv, id, func(r Run) bool { return len(r.Steps) == 1 })
	}
	if spec := <-f.specs; spec.Session == "" {
		t.Fatalf("a run without a session id: %+v", spec)
	}
	if code := call(t, srv, "POST", "/v1/runs/"+kept.ID+"/resume", "{}", nil); code != http.StatusConflict {
		t.Fatalf("resuming a running run: %d", code)
	}
	if code := call(t, srv, "DELETE", "/v1/runs/"+dropped.ID, "", nil); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	waitRun(t, srv, dropped.ID, func(r Run) bool { return r.Status == "cancelled" })
	if srv.Idle(0) {
		t.Fatal("idle while a run is running")
	}
	srv.Close()

	st, err := runstore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Get(context.Background(), kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != runstore.Interrupted || len(got.Turns) != 1 || len(got.Turns[0].Steps) != 1 || !strings.Contains(got.Error, "resume") {
		t.Fatalf("after shutdown: %+v", got)
	}
	if got, _ := st.Get(context.Background(), dropped.ID); got.Status != runstore.Cancelled {
		t.Fatalf("the cancelled run after shutdown: %+v", got)
	}
}
