package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/sdk"
)

func TestRunRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := s.Create(ctx, Run{ID: "r-1", Task: "add", Session: "s-1", Backend: "wasm", Started: started}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, Run{ID: "r-0", Task: "older", Started: started.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	reply := "Two blocks.\n```python\nx = 1\n```\n```python\nprint(x)\n```"
	if err := s.AppendReply(ctx, "r-1", 1, reply); err != nil {
		t.Fatal(err)
	}
	step := &agent.Step{N: 1, Code: "x = 1\n", Stdout: "", Result: &sdk.ExecResult{StateLost: true}, Duration: time.Second}
	if err := s.AppendStep(ctx, "r-1", 1, step); err != nil {
		t.Fatal(err)
	}
	// Closed without a final status, as a killed process leaves it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStoreIn(t, dir)
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Interrupted || got.Finished == nil || got.Task != "add" || got.Session != "s-1" || got.Backend != "wasm" || !got.Started.Equal(started) {
		t.Fatalf("run after its owner went away: %+v", got)
	}
	if len(got.Turns) != 1 || got.Turns[0].N != 1 || got.Turns[0].Reply != reply || len(got.Turns[0].Steps) != 1 {
		t.Fatalf("turns %+v", got.Turns)
	}
	if st := got.Turns[0].Steps[0]; st.Code != "x = 1\n" || st.Result == nil || !st.Result.StateLost || st.Duration != time.Second {
		t.Fatalf("step %+v", st)
	}
	res := json.RawMessage(`{"answer":"42"}`)
	if err := s.SetStatus(ctx, "r-1", Update{Status: Done, Result: res}); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "r-0" || list[1].ID != "r-1" || list[1].Status != Done || list[1].Result != nil || list[1].Error != "" {
		t.Fatalf("list %+v", list)
	}
	if got, _ := s.Get(ctx, "r-1"); string(got.Result) != string(res) {
		t.Fatalf("result %s", got.Result)
	}
	if _, err := s.Get(ctx, "r-nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
	if err := s.SetStatus(ctx, "r-nope", Update{Status: Done}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of an unknown run: %v", err)
	}
}

// A run that another live process (a server and a daemon share the state
// dir) is running stays running; once that process is gone it is
// interrupted.
func TestRecoverLeavesLiveOwnersAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openStoreIn(t, dir)
	b := openStoreIn(t, dir)
	if err := a.Create(ctx, Run{ID: "r-a", Task: "t", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.Get(ctx, "r-a"); r.Status != Running {
		t.Fatalf("a live owner's run became %s", r.Status)
	}
	if _, err := b.Resume(ctx, "r-a"); !errors.Is(err, ErrNotResumable) {
		t.Fatalf("resuming a run that runs elsewhere: %v", err)
	}
	if err := a.owner.release(); err != nil { // as if a's process died
		t.Fatal(err)
	}
	run, err := b.Resume(ctx, "r-a")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != Running || run.Owner != b.owner.id {
		t.Fatalf("resumed %+v", run)
	}
	if err := b.SetStatus(ctx, "r-a", Update{Status: Done}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resume(ctx, "r-a"); !errors.Is(err, ErrNotResumable) {
		t.Fatalf("resuming a done run: %v", err)
	}
	if _, err := b.Resume(ctx, "r-none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resuming an unknown run: %v", err)
	}
}

func openStoreIn(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
