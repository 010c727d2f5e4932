package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// smallTmpfs mounts a tmpfs of size at a new directory, unmounted when the
// test ends. Mounting needs root (CAP_SYS_ADMIN): without it the test is
// skipped.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes path until the file system is full and returns its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, unix.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// hostpythonManager is a session manager on the hostpython example plugin
// with its workspace at ws and its state outside it.
func hostpythonManager(t *testing.T, ws string) *session.Manager {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	out, err := exec.Command("go", "build", "-o", filepath.Join(plugins, sdk.BinaryPrefix+"hostpython"), "../../examples/plugins/hostpython").CombinedOutput()
	if err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	src := fmt.Sprintf("runtime {\n  backend = \"hostpython\"\n  plugin_dir = %q\n  workspace = %q\n  state_dir = %q\n}\n", plugins, ws, filepath.Join(dir, "state"))
	cfg, err := config.Parse([]byte(src), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: testLog{t}})
	m := session.New(cfg, pluginhost.New(cfg, logger), nil, logger)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// With the workspace on a full 5 MB tmpfs, an execution still runs, its
// result says what was not recorded (replay_error), and the log holds
// only whole records: every line reads back.
func TestFullDiskReportsReplayErrorAndKeepsTheLogWhole(t *testing.T) {
	ws := smallTmpfs(t, "5m")
	m := hostpythonManager(t, ws)
	rec := Record(m, nil)
	t.Cleanup(rec.Close)
	ctx := t.Context()
	s, err := m.Open(ctx, session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(code string) *sdk.ExecResult {
		t.Helper()
		res, err := m.Exec(ctx, s, code, 0, nil)
		if err != nil {
			t.Fatalf("exec %q: %v", code, err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("exec %q: exit %d: %s", code, res.ExitCode, res.Message)
		}
		return res
	}
	if res := run("x = 1"); res.ReplayError != "" {
		t.Fatalf("step 1 on an empty disk: replay_error %q", res.ReplayError)
	}
	rec.Wait() // step 1's state is saved

	// Full: nothing of the step fits (its output is larger than what is
	// left of the log's last page).
	filler := filepath.Join(ws, Dir, "filler")
	n := fill(t, filler)
	res := run("print('full' * 5000)")
	if !strings.Contains(res.ReplayError, "step 2 not in the replay log") || !strings.Contains(res.ReplayError, "no space left on device") {
		t.Fatalf("full disk: replay_error %q", res.ReplayError)
	}

	// Almost full: the record starts to fit and then does not (a short
	// write), and is removed again.
	if err := os.Truncate(filler, n-16<<10); err != nil {
		t.Fatal(err)
	}
	res = run("print('y' * 100000)")
	if !strings.Contains(res.ReplayError, "step 3 not in the replay log") || !strings.Contains(res.ReplayError, "removed again") {
		t.Fatalf("short write: replay_error %q", res.ReplayError)
	}
	t.Logf("replay_error of the short write: %s", res.ReplayError)
	b, _ := os.ReadFile(LogPath(ws, s.ID))
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("the log does not end with a whole record: ...%q", b[max(0, len(b)-80):])
	}

	// Room again: recorded as before.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if res := run("print(x)"); res.ReplayError != "" {
		t.Fatalf("after freeing space: replay_error %q", res.ReplayError)
	}
	rec.Wait()

	// The state save runs after the caller has its result: a pickle that
	// does not fit is reported with the next step.
	n = fill(t, filler)
	if err := os.Truncate(filler, n-1<<20); err != nil {
		t.Fatal(err)
	}
	if res := run("big = 'z' * 3000000"); res.ReplayError != "" {
		t.Fatalf("step 5: replay_error %q", res.ReplayError)
	}
	rec.Wait()
	if res := run("pass"); !strings.Contains(res.ReplayError, "state of step 5 not saved") {
		t.Fatalf("step 6 after step 5's state did not fit: replay_error %q", res.ReplayError)
	} else {
		t.Logf("replay_error of the step after a failed state save: %s", res.ReplayError)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	entries, problems, err := Show(ws, s.ID, -1)
	if err != nil || len(problems) != 0 {
		t.Fatalf("replay show: %v, problems %v", err, problems)
	}
	var steps []int
	for _, e := range entries {
		steps = append(steps, e.Step)
	}
	if fmt.Sprint(steps) != "[1 4 5 6]" {
		t.Fatalf("recorded steps %v, want [1 4 5 6] (2 and 3 were not recorded and said so)", steps)
	}
}

// The recorder prunes in the background: a pass soon after it starts
// removes a session older than replay.keep (30d by default) and keeps a
// live one just as old.
func TestRecorderPrunesInTheBackground(t *testing.T) {
	ws := t.TempDir()
	m := hostpythonManager(t, ws)
	b := &storeBuilder{t: t, ws: ws, snap: NewSnapshotter(ws)}
	b.session("old", map[string]string{"a.txt": "old's"}, 40*day)
	b.session("live", map[string]string{"b.txt": "live's"}, 40*day)
	b.age(50 * day)
	if _, err := m.Open(t.Context(), session.Options{ID: "live"}); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { retentionDelay = d }(retentionDelay)
	retentionDelay = 10 * time.Millisecond
	rec := Record(m, nil)
	t.Cleanup(rec.Close)
	deadline := time.Now().Add(30 * time.Second)
	for rec.LastPrune() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no retention pass within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep := rec.LastPrune()
	if got := sessionsOf(rep); strings.Join(got, " ") != "old:age" {
		t.Fatalf("the pass removed %v, want old only", got)
	}
	if b.exists("old.jsonl") || !b.exists("live.jsonl") || !b.exists("objects/"+sha("live's")) || b.exists("objects/"+sha("old's")) {
		t.Fatalf("store after the pass: %v", b.files())
	}
}
