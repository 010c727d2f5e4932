package sessionreg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRecordsOutliveTheRegistryAndOneOwnerAtATime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions", "daemon")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second owner: %v", err)
	}
	created := time.Now().UTC().Truncate(time.Second)
	for _, id := range []string{"a", "b"} {
		if err := r.Put(Record{ID: id, Backend: "wasm", Workspace: "/ws", Created: created, State: StateLive}); err != nil {
			t.Fatal(err)
		}
	}
	// The first execution is written at once, later ones when flushed.
	if err := r.Execs("a", 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Execs("a", 7); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(Record{ID: "b", Backend: "wasm", Created: created, State: StateHibernated,
		Checkpoint: &Checkpoint{State: ".replay/state/b-hibernated.pkl", NotCarried: map[string]string{"g": "unpicklable"}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete("gone"); err != nil {
		t.Fatalf("deleting an unknown record: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "torn.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	defer r.Close()
	recs, err := r.Load()
	if err == nil {
		t.Error("an unreadable record was not reported")
	}
	if len(recs) != 2 {
		t.Fatalf("records %+v", recs)
	}
	byID := map[string]*Record{}
	for _, rec := range recs {
		byID[rec.ID] = rec
	}
	if a := byID["a"]; a == nil || a.Execs != 7 || a.State != StateLive || !a.Created.Equal(created) {
		t.Errorf("a: %+v", a)
	}
	if b := byID["b"]; b == nil || b.State != StateHibernated || b.Checkpoint == nil || b.Checkpoint.NotCarried["g"] == "" {
		t.Errorf("b: %+v", b)
	}
	if err := r.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted record still on disk: %v", err)
	}
}
