package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests drive the real binary with real plugin processes,
// as a user or script would.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpruntime-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	builds := map[string]string{
		"mcpruntime":                             ".",
		"plugins/mcpruntime-plugin-hostpython":   "../../../examples/plugins/hostpython",
		"testplugins/mcpruntime-plugin-garbage":  "../../internal/testplugins/garbage",
		"testplugins/mcpruntime-plugin-crash":    "../../internal/testplugins/crash",
		"testplugins/mcpruntime-plugin-oldproto": "../../internal/testplugins/oldproto",
	}
	for out, pkg := range builds {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = filepath.Join(mustWd(), "")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func mustWd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs mcpruntime in dir with args.
func cli(t *testing.T, dir string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// project makes a directory with a runtime.hcl selecting hostpython.
func project(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	hcl := "runtime {\n  backend = \"hostpython\"\n  daemon_idle_timeout = \"2m\"\n}\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli(t, dir, "", "daemon", "stop") })
	return dir
}

func TestExecOutputAndExitCodes(t *testing.T) {
	dir := project(t, "")
	if r := cli(t, dir, "", "exec", "-c", "print(6*7)"); r.stdout != "42\n" || r.code != 0 {
		t.Fatalf("print(6*7): %+v", r)
	}
	if r := cli(t, dir, "", "exec", "-c", "import sys; sys.exit(3)"); r.code != 3 {
		t.Fatalf("sys.exit(3): %+v", r)
	}
	r := cli(t, dir, "", "exec", "--json", "-c", "print('hi'); 1/0")
	var out struct {
		Stdout, Stderr, Session string
		ExitCode                int     `json:"exit_code"`
		Error                   *string `json:"error"`
		DurationMs              float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if out.Stdout != "hi\n" || out.ExitCode != 1 || out.Error == nil || !strings.Contains(*out.Error, "ZeroDivisionError") || out.Session == "" || r.code != 1 {
		t.Fatalf("--json: %+v (exit %d)", out, r.code)
	}
	if r := cli(t, dir, "print('from stdin')", "exec"); r.stdout != "from stdin\n" {
		t.Fatalf("stdin: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "job.py"), []byte("print('from file')\n"), 0o644)
	if r := cli(t, dir, "", "exec", "job.py"); r.stdout != "from file\n" {
		t.Fatalf("file: %+v", r)
	}
}

func TestExecBadCode(t *testing.T) {
	dir := project(t, "")
	r := cli(t, dir, "", "exec", "-c", "def f(:\n  pass")
	if r.code != 1 || !strings.Contains(r.stderr, "SyntaxError") {
		t.Fatalf("syntax error: %+v", r)
	}
	r = cli(t, dir, "", "exec", "-c", "import os; os._exit(9)")
	if r.code != 9 || !strings.Contains(r.stderr, "kernel died") {
		t.Fatalf("os._exit(9): %+v", r)
	}
	r = cli(t, dir, "", "exec", "-c", "import ctypes; ctypes.string_at(0)")
	if r.code != 139 || !strings.Contains(r.stderr, "SIGSEGV") && !strings.Contains(r.stderr, "segmentation") {
		t.Fatalf("segfault: %+v", r)
	}
	r = cli(t, dir, "", "exec", "--timeout", "500ms", "-c", "while True: pass")
	if r.code != 124 || !strings.Contains(r.stderr, "timed out") {
		t.Fatalf("timeout: %+v", r)
	}
	if r := cli(t, dir, "", "exec"); r.code != 2 || !strings.Contains(r.stderr, "no code") && !strings.Contains(r.stdout+r.stderr, "") {
		t.Logf("no code: %+v", r)
	}
}

func TestSessionsPersistAcrossInvocations(t *testing.T) {
	dir := project(t, "")
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "x = 41"); r.code != 0 {
		t.Fatalf("define: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "print(x + 1)"); r.stdout != "42\n" {
		t.Fatalf("reuse: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "s2", "-c", "print(x)"); r.code != 1 || !strings.Contains(r.stderr, "NameError") {
		t.Fatalf("other session sees x: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "open('note.txt','w').write('kept')"); r.code != 0 {
		t.Fatalf("write: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "workspace", "note.txt")); err != nil || string(b) != "kept" {
		t.Fatalf("workspace file: %q %v", b, err)
	}
	if r := cli(t, dir, "", "exec", "--session", "../evil", "-c", "1"); r.code != 125 || !strings.Contains(r.stderr, "invalid session id") {
		t.Fatalf("bad session id: %+v", r)
	}
}

func TestConfigTypoShowsPosition(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte("runtime {\n  backnd = \"wasm\"\n}\n"), 0o644)
	r := cli(t, dir, "", "exec", "-c", "1")
	if r.code != 2 || !strings.Contains(r.stderr, "runtime.hcl:2:3") {
		t.Fatalf("typo: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte("runtime {\n  backend = \"hostpython\"\n}\nsandbox \"hostpython\" {\n  config {\n    pyhton = \"python3\"\n  }\n}\n"), 0o644)
	r = cli(t, dir, "", "--config", filepath.Join(dir, "runtime.hcl"), "exec", "-c", "1")
	if r.code != 125 || !strings.Contains(r.stderr, "runtime.hcl:6:5") || !strings.Contains(r.stderr, `Did you mean "python"?`) {
		t.Fatalf("typo in plugin block: %+v", r)
	}
}

func TestBrokenPlugins(t *testing.T) {
	tp := filepath.Join(binDir, "testplugins")
	notExec := filepath.Join(t.TempDir(), "mcpruntime-plugin-noexec")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	cases := map[string]struct{ path, want string }{
		"missing":        {"/nonexistent/mcpruntime-plugin-x", "executable not found"},
		"not executable": {notExec, "not executable"},
		"garbage":        {filepath.Join(tp, "mcpruntime-plugin-garbage"), "hello, I am not a handshake"},
		"crash":          {filepath.Join(tp, "mcpruntime-plugin-crash"), "exited before the handshake; its stderr ends with: fatal: cannot open /nonexistent/libsandbox.so"},
		"old protocol":   {filepath.Join(tp, "mcpruntime-plugin-oldproto"), "speaks protocol version 99, this core speaks 1 and 2"},
	}
	for name, tc := range cases {
		dir := t.TempDir()
		hcl := fmt.Sprintf("runtime {\n  backend = \"broken\"\n}\nsandbox \"broken\" {\n  plugin = %q\n}\n", tc.path)
		os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644)
		start := time.Now()
		r := cli(t, dir, "", "exec", "-c", "print(1)")
		if r.code != 125 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d stderr %q, want 125 and %q", name, r.code, r.stderr, tc.want)
		}
		if d := time.Since(start); d > 40*time.Second {
			t.Errorf("%s: took %s", name, d)
		}
	}
	if r := cli(t, t.TempDir(), "", "exec", "--backend", "nope", "-c", "1"); r.code != 125 || !strings.Contains(r.stderr, `unknown backend "nope"`) {
		t.Errorf("unknown backend: %+v", r)
	}
}

// pids lists processes whose command line mentions s.
func pids(t *testing.T, s string) []int {
	out, _ := exec.Command("pgrep", "-f", s).Output()
	var ps []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
			ps = append(ps, p)
		}
	}
	return ps
}

func waitGone(t *testing.T, pattern string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(pids(t, pattern)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v (%s)", pids(t, pattern), pattern)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPluginKilledMidExec(t *testing.T) {
	dir := project(t, "")
	marker := fmt.Sprintf("sleep-marker-%d", time.Now().UnixNano())
	done := make(chan result, 1)
	go func() {
		done <- cli(t, dir, "", "exec", "--session", "k", "-c", fmt.Sprintf("import time\nopen('running','w').close()\ntime.sleep(60)  # %s", marker))
	}()
	plugin := filepath.Join(binDir, "plugins", "mcpruntime-plugin-hostpython")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "workspace", "running")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ps := pids(t, plugin)
	if len(ps) == 0 {
		t.Fatal("plugin never started")
	}
	for _, p := range ps {
		syscall.Kill(p, syscall.SIGKILL)
	}
	r := <-done
	if r.code != 125 || !strings.Contains(r.stderr, "plugin exited during execution") {
		t.Fatalf("killed plugin: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "k", "-c", "print('after')"); r.code != 0 || r.stdout != "after\n" || !strings.Contains(r.stderr, "was restarted before this execution") {
		t.Fatalf("next exec: %+v; want its output and the state-lost note", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "k", "-c", "print('again')"); r.code != 0 || r.stdout != "again\n" || r.stderr != "" {
		t.Fatalf("second exec after the restart: %+v", r)
	}
	cli(t, dir, "", "daemon", "stop")
	waitGone(t, plugin)
	waitGone(t, marker)
}

// A plugin killed between two executions: the session's next execution is
// told its variables are gone, once; its workspace files are still there.
func TestPluginKilledBetweenExecs(t *testing.T) {
	dir := project(t, "")
	if r := cli(t, dir, "", "exec", "--session", "k", "-c", "x = 41\nopen('kept.txt', 'w').write('kept')"); r.code != 0 {
		t.Fatalf("define: %+v", r)
	}
	plugin := filepath.Join(binDir, "plugins", "mcpruntime-plugin-hostpython")
	ps := pids(t, plugin)
	if len(ps) == 0 {
		t.Fatal("plugin not running")
	}
	for _, p := range ps {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitGone(t, plugin)
	r := cli(t, dir, "", "exec", "--json", "--session", "k", "-c", "print(x)")
	var out struct {
		ExitCode  int     `json:"exit_code"`
		Error     *string `json:"error"`
		StateLost bool    `json:"state_lost"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json: %v %+v", err, r)
	}
	if !out.StateLost || out.ExitCode != 1 || out.Error == nil || !strings.Contains(*out.Error, "NameError") || !strings.Contains(*out.Error, "plugin restarted") {
		t.Fatalf("first exec after the kill: %+v (%s)", out, r.stdout)
	}
	r = cli(t, dir, "", "exec", "--json", "--session", "k", "-c", "print(open('kept.txt').read())")
	out.StateLost = true
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.StateLost || out.ExitCode != 0 || !strings.Contains(r.stdout, "kept") {
		t.Fatalf("second exec after the kill: %v %s", err, r.stdout)
	}
}

// lockedBuffer is a bytes.Buffer that a child's output copier writes while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNoOrphansAfterSigterm(t *testing.T) {
	dir := project(t, "")
	marker := fmt.Sprintf("term-marker-%d", time.Now().UnixNano())
	cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), "exec", "-c", fmt.Sprintf("import time\nprint('%s', flush=True)\ntime.sleep(60)", marker))
	cmd.Dir = dir
	var out lockedBuffer // written by exec's copier, read here
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), marker) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("SIGTERM during exec: %v", err)
	}
	waitGone(t, marker)
	waitGone(t, filepath.Join(binDir, "plugins"))
}

func TestPluginsListAndCheck(t *testing.T) {
	dir := project(t, "")
	r := cli(t, dir, "", "plugins", "list", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"name":"hostpython"`) || !strings.Contains(r.stdout, `"isolation":"process"`) || !strings.Contains(r.stdout, `"protocol":2`) {
		t.Fatalf("plugins list: %+v", r)
	}
	r = cli(t, dir, "", "plugins", "check", filepath.Join(binDir, "plugins", "mcpruntime-plugin-hostpython"))
	if r.code != 0 || !strings.Contains(r.stdout, "0 failed") {
		t.Fatalf("plugins check: %+v", r)
	}
	r = cli(t, dir, "", "plugins", "check", filepath.Join(binDir, "testplugins", "mcpruntime-plugin-crash"))
	if r.code != 1 {
		t.Fatalf("check of a crashing plugin: %+v", r)
	}
}

func TestDoctor(t *testing.T) {
	dir := project(t, "")
	r := cli(t, dir, "", "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "backend hostpython (default)") || !strings.Contains(r.stdout, "protocol=2") {
		t.Fatalf("doctor: %+v", r)
	}
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "runtime.hcl"), []byte("runtime {\n  backend = \"absent\"\n}\n"), 0o644)
	r = cli(t, dir2, "", "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "fix:") {
		t.Fatalf("doctor with a missing backend: %+v", r)
	}
}

func TestBench(t *testing.T) {
	dir := project(t, "")
	r := cli(t, dir, "", "bench", "--backend", "hostpython", "-n", "2", "--json")
	var out struct {
		Backend string
		Results []struct {
			Name     string
			N        int
			MedianMs float64 `json:"median_ms"`
			Baseline string
			Ratio    float64
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("bench --json: %v %+v", err, r)
	}
	names := map[string]bool{}
	for _, row := range out.Results {
		names[row.Name] = row.MedianMs > 0
		if row.Name == "exec in existing session" && (row.Baseline == "" || row.Ratio <= 0) {
			t.Errorf("exec row has no baseline ratio: %+v", row)
		}
	}
	for _, want := range []string{"native python3 -c (start)", "new session + first exec", "exec in existing session", "compute in session"} {
		if !names[want] {
			t.Errorf("bench lacks a measured %q row: %+v", want, out.Results)
		}
	}
}

// `daemon stop` returns once the daemon is gone, and a session command
// right after it (or racing with it) gets a new daemon instead of failing
// on the lock the old one holds while it shuts its sessions down.
func TestDaemonStopThenSession(t *testing.T) {
	dir := project(t, "")
	for i := range 3 {
		if r := cli(t, dir, "", "exec", "--session", "s", "-c", "print('up')"); r.code != 0 || r.stdout != "up\n" {
			t.Fatalf("round %d: exec: %+v", i, r)
		}
		stopped := make(chan result, 1)
		go func() { stopped <- cli(t, dir, "", "daemon", "stop") }()
		if i%2 == 0 {
			<-stopped // sequential: stop, then a session
		}
		if r := cli(t, dir, "", "exec", "--session", "s2", "-c", "print('again')"); r.code != 0 || r.stdout != "again\n" {
			t.Fatalf("round %d: exec after stop: %+v", i, r)
		}
		if i%2 == 1 {
			<-stopped // racing with the stop
		}
		cli(t, dir, "", "daemon", "stop")
	}
}

// Sandbox code sees the workspace, and the runtime's state (the daemon's
// socket, the plugins' caches and kernels) is not in it.
func TestStateIsOutsideTheWorkspace(t *testing.T) {
	dir := project(t, "")
	code := "import os; print(sorted(os.listdir('.')))"
	if r := cli(t, dir, "", "exec", "--session", "s", "-c", "open('mine.txt', 'w').close()"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	r := cli(t, dir, "", "exec", "--session", "s", "-c", code)
	if r.code != 0 || strings.Contains(r.stdout, ".mcpruntime") || !strings.Contains(r.stdout, "mine.txt") {
		t.Fatalf("the sandbox's view of its workspace: %+v; want mine.txt and no .mcpruntime", r)
	}
	for _, p := range []string{"daemon.sock", "plugins"} {
		if _, err := os.Stat(filepath.Join(dir, ".mcpruntime", p)); err != nil {
			t.Errorf("state beside runtime.hcl: %v", err)
		}
	}
}
