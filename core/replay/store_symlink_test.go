package replay

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// storeFixture is a workspace and, outside it, files a sandbox points the
// store's entries at: a shell start-up file the user can write and a
// directory.
type storeFixture struct {
	ws, outside, bashrc string
}

const bashrc = "export PATH=$HOME/bin:$PATH\n"

func newStoreFixture(t *testing.T) storeFixture {
	t.Helper()
	x := storeFixture{ws: t.TempDir(), outside: t.TempDir()}
	x.bashrc = filepath.Join(x.outside, ".bashrc")
	if err := os.WriteFile(x.bashrc, []byte(bashrc), 0o600); err != nil {
		t.Fatal(err)
	}
	return x
}

// plant makes ws/rel a symlink to target.
func (x storeFixture) plant(t *testing.T, target, rel string) {
	t.Helper()
	p := filepath.Join(x.ws, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// within runs f and fails the test if it takes longer than 5 s (it would
// be blocked in an open or read of a fifo).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked on a fifo planted in the store", what)
	}
}

// Appending a step never writes through a symlink a sandbox planted at
// the log, at a dangling log name, or at the store directory itself.
func TestAppendNeverWritesThroughASymlink(t *testing.T) {
	for _, c := range []struct{ name, rel, target, outside string }{
		{"log", Dir + "/s1.jsonl", ".bashrc", ".bashrc"},
		{"dangling log", Dir + "/s1.jsonl", "new.jsonl", "new.jsonl"},
		{"store dir", Dir, "store", "store/s1.jsonl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newStoreFixture(t)
			if err := os.MkdirAll(filepath.Join(x.outside, "store"), 0o755); err != nil {
				t.Fatal(err)
			}
			x.plant(t, filepath.Join(x.outside, c.target), c.rel)
			l, err := OpenLog(x.ws, "s1")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(&Entry{Step: 1, Session: "s1", Code: "print(1)", OK: true}); err == nil {
				t.Errorf("Append through a symlink at %s succeeded", c.rel)
			}
			if b, _ := os.ReadFile(x.bashrc); string(b) != bashrc {
				t.Fatalf("the step was appended to the file outside the workspace:\n%s", b)
			}
			if c.outside != ".bashrc" {
				if _, err := os.Lstat(filepath.Join(x.outside, c.outside)); err == nil {
					t.Fatalf("a log was created outside the workspace: %s", c.outside)
				}
			}
		})
	}
}

// Reading logs (show, list, resume) never reads what a symlink planted in
// the store points to, and a fifo there does not block it.
func TestReadLogsNeverFollowASymlink(t *testing.T) {
	secret := Entry{Step: 1, Session: "s1", Code: "HOST SECRET", OK: true}
	line, _ := json.Marshal(secret)
	t.Run("log", func(t *testing.T) {
		x := newStoreFixture(t)
		outsideLog := filepath.Join(x.outside, "log.jsonl")
		if err := os.WriteFile(outsideLog, append(line, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		x.plant(t, outsideLog, Dir+"/s1.jsonl")
		if entries, _, err := Show(x.ws, "s1", -1); err == nil || len(entries) != 0 {
			t.Errorf("Show read a log through a symlink: %+v %v", entries, err)
		}
		list, err := List(x.ws)
		if err != nil || len(list) != 1 || list[0].Steps != 0 || len(list[0].Problems) == 0 {
			t.Errorf("List read a log through a symlink: %+v %v", list, err)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		x := newStoreFixture(t)
		if err := os.MkdirAll(filepath.Join(x.ws, Dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(x.ws, Dir, "s2.jsonl"), 0o644); err != nil {
			t.Fatal(err)
		}
		within(t, "Show", func() {
			if entries, _, err := Show(x.ws, "s2", -1); err == nil || len(entries) != 0 {
				t.Errorf("Show of a fifo: %+v %v", entries, err)
			}
		})
		within(t, "List", func() {
			if list, err := List(x.ws); err != nil || len(list) != 1 || len(list[0].Problems) == 0 {
				t.Errorf("List of a fifo: %+v %v", list, err)
			}
		})
	})
	t.Run("store dir", func(t *testing.T) {
		x := newStoreFixture(t)
		if err := os.MkdirAll(filepath.Join(x.outside, "store"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(x.outside, "store", "s1.jsonl"), append(line, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		x.plant(t, filepath.Join(x.outside, "store"), Dir)
		if entries, _, err := Show(x.ws, "s1", -1); err == nil || len(entries) != 0 {
			t.Errorf("Show read a log through a symlinked store: %+v %v", entries, err)
		}
		if list, err := List(x.ws); err == nil {
			for _, s := range list {
				if s.Steps != 0 {
					t.Errorf("List read a log through a symlinked store: %+v", s)
				}
			}
		}
	})
}

// A state sidecar is neither read nor written through a symlink at it or
// at the state directory, and a fifo there does not block its reader.
func TestStateInfoNeverFollowsASymlink(t *testing.T) {
	ref := StatePath("s1", 1)
	secret := []byte(`{"saved":["HOST SECRET"],"duration_ms":1}`)
	t.Run("sidecar", func(t *testing.T) {
		x := newStoreFixture(t)
		outsideInfo := filepath.Join(x.outside, "info.json")
		if err := os.WriteFile(outsideInfo, secret, 0o600); err != nil {
			t.Fatal(err)
		}
		x.plant(t, outsideInfo, ref+".json")
		if si, err := ReadStateInfo(x.ws, ref); err == nil {
			t.Errorf("ReadStateInfo through a symlink: %+v", si)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		x := newStoreFixture(t)
		if err := os.MkdirAll(filepath.Join(x.ws, Dir, "state"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(x.ws, ref+".json"), 0o644); err != nil {
			t.Fatal(err)
		}
		within(t, "ReadStateInfo", func() {
			if si, err := ReadStateInfo(x.ws, ref); err == nil {
				t.Errorf("ReadStateInfo of a fifo: %+v", si)
			}
		})
	})
	t.Run("state dir", func(t *testing.T) {
		x := newStoreFixture(t)
		outsideState := filepath.Join(x.outside, "state")
		if err := os.MkdirAll(outsideState, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outsideState, "s1-1.pkl.json"), secret, 0o600); err != nil {
			t.Fatal(err)
		}
		x.plant(t, outsideState, Dir+"/state")
		if si, err := ReadStateInfo(x.ws, ref); err == nil {
			t.Errorf("ReadStateInfo through a symlinked state directory: %+v", si)
		}
		if err := writeStateInfo(x.ws, StatePath("s1", 3), &StateInfo{Error: "x"}); err == nil {
			t.Error("writeStateInfo through a symlinked state directory succeeded")
		}
		if _, err := os.Lstat(filepath.Join(outsideState, "s1-3.pkl.json")); err == nil {
			t.Error("a state sidecar was written outside the workspace")
		}
		if b, _ := os.ReadFile(filepath.Join(outsideState, "s1-1.pkl.json")); string(b) != string(secret) {
			t.Errorf("the outside sidecar changed: %s", b)
		}
	})
}

// What a sandbox wrote to the store's state directory is still read as
// before when it is what it should be.
func TestStateInfoRoundTrip(t *testing.T) {
	ws := t.TempDir()
	ref := StatePath("s1", 1)
	want := &StateInfo{Saved: []string{"x"}, Skipped: map[string]string{"f": "unpicklable"}, DurationMs: 2}
	if err := writeStateInfo(ws, ref, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStateInfo(ws, ref)
	if err != nil || len(got.Saved) != 1 || got.Skipped["f"] != "unpicklable" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ReadStateInfo(ws, StatePath("s1", 2)); !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing sidecar: %v", err)
	}
}

// The recorder's state directory is created, and a stale pickle removed,
// without following a symlink: a symlinked state directory is refused, a
// symlink at the pickle's name is removed itself.
func TestStateFilesNeverFollowASymlink(t *testing.T) {
	x := newStoreFixture(t)
	outsideState := filepath.Join(x.outside, "state")
	if err := os.MkdirAll(outsideState, 0o755); err != nil {
		t.Fatal(err)
	}
	pickle := filepath.Join(outsideState, "s1-1.pkl")
	if err := os.WriteFile(pickle, []byte("pickle"), 0o600); err != nil {
		t.Fatal(err)
	}
	x.plant(t, outsideState, Dir+"/state")
	if err := prepareStateDir(x.ws); err == nil {
		t.Error("prepareStateDir accepted a symlinked state directory")
	}
	if err := removeState(x.ws, StatePath("s1", 1)); err == nil {
		t.Error("removeState through a symlinked state directory succeeded")
	}
	if _, err := os.Stat(pickle); err != nil {
		t.Fatalf("a file outside the workspace was removed: %v", err)
	}

	y := newStoreFixture(t)
	if err := prepareStateDir(y.ws); err != nil {
		t.Fatal(err)
	}
	y.plant(t, y.bashrc, StatePath("s1", 2))
	if err := removeState(y.ws, StatePath("s1", 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(y.ws, StatePath("s1", 2))); !os.IsNotExist(err) {
		t.Fatalf("the symlink is still there: %v", err)
	}
	if b, _ := os.ReadFile(y.bashrc); string(b) != bashrc {
		t.Fatal("the symlink's target changed")
	}
	if err := removeState(y.ws, StatePath("s1", 3)); err != nil {
		t.Fatalf("removing a missing pickle: %v", err)
	}
}

// Store files are read up to their caps: an over-long line is skipped and
// reported, a log is read up to maxLogBytes, a larger state sidecar is
// refused.
func TestStoreReadsAreCapped(t *testing.T) {
	defer func(b int64, l int, s int64) { maxLogBytes, maxLogLine, maxStateInfo = b, l, s }(maxLogBytes, maxLogLine, maxStateInfo)
	maxLogBytes, maxLogLine, maxStateInfo = 4096, 1024, 256
	ws := t.TempDir()
	l, err := OpenLog(ws, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(&Entry{Step: 1, Code: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(&Entry{Step: 2, Code: strings.Repeat("x", 2000)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(&Entry{Step: 3, Code: "ok"}); err != nil {
		t.Fatal(err)
	}
	for l.Append(&Entry{Step: 4, Code: strings.Repeat("y", 500)}) == nil {
		if fi, err := os.Stat(l.Path()); err != nil || fi.Size() > 8192 {
			break
		}
	}
	entries, problems, err := l.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 || entries[0].Step != 1 || entries[1].Step != 3 {
		t.Fatalf("entries around the long line: %+v", entries)
	}
	var long, capped bool
	for _, p := range problems {
		long = long || (p.Line == 2 && strings.Contains(p.Reason, "longer than"))
		capped = capped || strings.Contains(p.Reason, "only the first 4096")
	}
	if !long || !capped {
		t.Fatalf("problems: %+v", problems)
	}
	var size int
	for _, e := range entries {
		size += len(e.Code)
	}
	if size > 4096 {
		t.Fatalf("%d bytes of code read from a log capped at 4096", size)
	}
	ref := StatePath("s1", 1)
	if err := writeStateInfo(ws, ref, &StateInfo{Error: strings.Repeat("e", 300)}); err != nil {
		t.Fatal(err)
	}
	if si, err := ReadStateInfo(ws, ref); err == nil {
		t.Fatalf("a sidecar over the cap was read: %+v", si)
	}
}
