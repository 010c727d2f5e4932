package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ageStore sets the mtime of everything under the workspace's .replay to
// age ago.
func ageStore(t *testing.T, ws string, age time.Duration) {
	t.Helper()
	old := time.Now().Add(-age)
	err := filepath.WalkDir(filepath.Join(ws, ".replay"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storeFiles(t *testing.T, ws string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(ws, ".replay"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "lock" && d.Name() != "swept" { // the store's own markers
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestReplayPrune(t *testing.T) {
	dir := project(t, "")
	ws := filepath.Join(dir, "workspace")
	r := cli(t, dir, "", "exec", "--json", "-c", "open('f.txt','w').write('old work')\nprint('one')")
	var out struct {
		Session     string `json:"session"`
		ReplayError string `json:"replay_error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || out.Session == "" || out.ReplayError != "" {
		t.Fatalf("exec: %v %+v", err, r)
	}
	ageStore(t, ws, 40*24*time.Hour)
	before := storeFiles(t, ws)

	r = cli(t, dir, "", "replay", "prune", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would remove session "+out.Session) || !strings.Contains(r.stdout, "older than 30d") || !strings.Contains(r.stdout, "total: would remove 1 sessions") {
		t.Fatalf("prune --dry-run: %+v", r)
	}
	if after := storeFiles(t, ws); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("--dry-run removed files:\nbefore %v\nafter  %v", before, after)
	}
	if r := cli(t, dir, "", "replay", "prune", "--older-than", "45d"); r.code != 0 || !strings.Contains(r.stdout, "total: removed 0 sessions") {
		t.Fatalf("prune --older-than 45d of a 40-day-old session: %+v", r)
	}
	r = cli(t, dir, "", "replay", "prune", "--older-than", "1w")
	if r.code != 0 || !strings.Contains(r.stdout, "removed session "+out.Session) || !strings.Contains(r.stdout, "total: removed 1 sessions") {
		t.Fatalf("prune --older-than 1w: %+v", r)
	}
	if left := storeFiles(t, ws); len(left) != 0 {
		t.Fatalf("left in the store: %v", left)
	}
	if r := cli(t, dir, "", "replay", "show", out.Session); r.code != 1 {
		t.Fatalf("show of a pruned session: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "prune", "--older-than", "30 days"); r.code != 2 || !strings.Contains(r.stderr, "--older-than") {
		t.Fatalf("bad --older-than: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "prune", "--max-size", "lots"); r.code != 2 {
		t.Fatalf("bad --max-size: %+v", r)
	}
}

// A workspace on a full tmpfs: the code runs and exits as it does, and
// the CLI says the step was not recorded (stderr, and replay_error with
// --json).
func TestExecReportsReplayError(t *testing.T) {
	dir := project(t, "")
	ws := filepath.Join(dir, "workspace")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", ws, "tmpfs", 0, "size=5m"); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(ws, unix.MNT_DETACH) })
	if err := os.Mkdir(filepath.Join(ws, ".replay"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(ws, ".replay", "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 64<<10))
	}
	f.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatal(err)
	}
	r := cli(t, dir, "", "exec", "-c", "print('x' * 20000)\nraise SystemExit(3)")
	if r.code != 3 || !strings.Contains(r.stderr, "\nmcpruntime: replay: ") || !strings.Contains(r.stderr, "step 1 not in the replay log") || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("exec on a full disk: code %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, dir, "", "exec", "--json", "-c", "print('x' * 20000)")
	var out struct {
		ExitCode    int    `json:"exit_code"`
		ReplayError string `json:"replay_error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || out.ExitCode != 0 || !strings.Contains(out.ReplayError, "not in the replay log") {
		t.Fatalf("exec --json on a full disk: %v %+v", err, r)
	}
}
