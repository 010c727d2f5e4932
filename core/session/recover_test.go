package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Sessions across a plugin restart, with real plugin processes killed with
// SIGKILL: the keeper test plugin (sessions kept in files, so a restarted
// keeper recovers them, or reports them lost with recover = false) and the
// hostpython example plugin (no recovery: variables live in its kernels).

var plugins struct {
	once sync.Once
	dir  string
	err  error
}

// pluginDir builds the test's plugins once.
func pluginDir(t *testing.T) string {
	t.Helper()
	plugins.once.Do(func() {
		plugins.dir, plugins.err = os.MkdirTemp("", "mcpruntime-session-plugins-")
		if plugins.err != nil {
			return
		}
		for name, pkg := range map[string]string{
			"keeper":     "../internal/testplugins/keeper",
			"hostpython": "../../examples/plugins/hostpython",
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(plugins.dir, sdk.BinaryPrefix+name), pkg).CombinedOutput()
			if err != nil {
				plugins.err = fmt.Errorf("build %s: %w\n%s", pkg, err, out)
				return
			}
		}
	})
	if plugins.err != nil {
		t.Fatal(plugins.err)
	}
	return plugins.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if plugins.dir != "" {
		os.RemoveAll(plugins.dir)
	}
	os.Exit(code)
}

// newManager returns a manager for a project using backend, with extra
// appended to its runtime.hcl.
func newManager(t *testing.T, backend, extra string) (*Manager, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf("runtime {\n  backend = %q\n  plugin_dir = %q\n}\n%s", backend, pluginDir(t), extra)
	cfg, err := config.Parse([]byte(src), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Info, Output: testWriter{t}})
	m := New(cfg, pluginhost.New(cfg, logger), nil, logger)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m, cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// killPlugin SIGKILLs the running plugin of backend and waits until the
// host sees it gone.
func killPlugin(t *testing.T, m *Manager, backend string) {
	t.Helper()
	inst, err := m.host.Backend(backend)
	if err != nil {
		t.Fatal(err)
	}
	p, gen, err := inst.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !inst.WaitExit(gen, 10*time.Second) {
		t.Fatalf("plugin %d still alive after SIGKILL", p.Pid())
	}
}

func run(t *testing.T, m *Manager, s *Session, code string) (*sdk.ExecResult, string) {
	t.Helper()
	var out strings.Builder
	res, err := m.Exec(context.Background(), s, code, 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	if err != nil {
		t.Fatalf("exec %q in %s: %v", code, s.ID, err)
	}
	return res, out.String()
}

func open(t *testing.T, m *Manager, id string) *Session {
	t.Helper()
	s, err := m.Open(context.Background(), Options{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFile polls until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantLost checks that res is the first result after a restart lost the
// session's state.
func wantLost(t *testing.T, res *sdk.ExecResult) {
	t.Helper()
	if !res.StateLost {
		t.Fatalf("state_lost not reported: %+v", res)
	}
	for _, want := range []string{"plugin restarted", "variables were lost", "workspace files are kept"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("message %q lacks %q", res.Message, want)
		}
	}
}

func keeperState(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "plugins", "keeper") }

func TestRestartedPluginRecoversSessions(t *testing.T) {
	m, cfg := newManager(t, "keeper", "")
	a, b, c := open(t, m, "a"), open(t, m, "b"), open(t, m, "c")
	run(t, m, a, "set x 41")
	run(t, m, c, "set z 1")
	killPlugin(t, m, "keeper")

	res, out := run(t, m, a, "print x")
	if out != "41\n" || res.StateLost || res.Message != "" || !res.OK() {
		t.Fatalf("recovered session: %q %+v", out, res)
	}
	res, _ = run(t, m, b, "set y 2")
	if res.StateLost {
		t.Errorf("a recovered session that had not run anything reports state_lost: %+v", res)
	}
	log, err := os.ReadFile(filepath.Join(keeperState(cfg), "recover.log"))
	if err != nil {
		t.Fatal(err)
	}
	offered := strings.Fields(string(log))
	if len(offered) != 3 || !strings.Contains(string(log), "a") || !strings.Contains(string(log), "b") || !strings.Contains(string(log), "c") {
		t.Errorf("RecoverSessions was offered %q, want a, b and c", offered)
	}
	// c was recovered but has not run since: closing it destroys it in the
	// new plugin.
	if err := m.Close(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keeperState(cfg), "sessions", "c.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("closing a recovered session left it in the plugin: %v", err)
	}
}

func TestRestartWithoutRecoveryReportsStateLostOnce(t *testing.T) {
	m, _ := newManager(t, "keeper", "sandbox \"keeper\" {\n  config {\n    recover = false\n  }\n}\n")
	a := open(t, m, "a")
	run(t, m, a, "set x 41")
	killPlugin(t, m, "keeper")

	res, out := run(t, m, a, "print x")
	if out != "" || res.Error != sdk.ErrorException || !strings.HasPrefix(res.Message, "NameError") {
		t.Fatalf("the variable survived a restart without recovery: %q %+v", out, res)
	}
	wantLost(t, res)
	res, _ = run(t, m, a, "set x 1")
	if res.StateLost || res.Message != "" {
		t.Fatalf("second execution after the restart: %+v", res)
	}
	if res, out = run(t, m, a, "print x"); out != "1\n" || res.StateLost {
		t.Fatalf("third execution: %q %+v", out, res)
	}
}

// An internal execution (the replay recorder's state save) after a restart
// sees the loss but leaves the note to the caller's next execution.
func TestInternalExecutionLeavesStateLostToTheNext(t *testing.T) {
	m, _ := newManager(t, "keeper", "sandbox \"keeper\" {\n  config {\n    recover = false\n  }\n}\n")
	m.SetInternal(func(code string) bool { return strings.HasPrefix(code, "# internal\n") })
	a := open(t, m, "a")
	run(t, m, a, "set x 41")
	killPlugin(t, m, "keeper")
	if res, _ := run(t, m, a, "# internal\nset saved 1"); !res.StateLost {
		t.Fatalf("internal execution after the restart: %+v", res)
	}
	res, _ := run(t, m, a, "print x")
	wantLost(t, res)
	if res, _ := run(t, m, a, "# internal\nset saved 2"); res.StateLost {
		t.Fatalf("internal execution after the note was delivered: %+v", res)
	}
	if res, _ := run(t, m, a, "set x 1"); res.StateLost {
		t.Fatalf("the note was delivered twice: %+v", res)
	}
}

func TestPluginKilledMidExec(t *testing.T) {
	for _, recover := range []bool{true, false} {
		t.Run(fmt.Sprintf("recover=%v", recover), func(t *testing.T) {
			m, cfg := newManager(t, "keeper", fmt.Sprintf("sandbox \"keeper\" {\n  config {\n    recover = %v\n  }\n}\n", recover))
			a := open(t, m, "a")
			run(t, m, a, "set x 41")
			errc := make(chan error, 1)
			go func() {
				_, err := m.Exec(context.Background(), a, "touch running\nsleep 60s", 0, nil)
				errc <- err
			}()
			waitFile(t, filepath.Join(cfg.Workspace, "running"))
			killPlugin(t, m, "keeper")
			select {
			case err := <-errc:
				if !errors.Is(err, ErrPluginCrashed) || !strings.Contains(err.Error(), "plugin exited during execution") {
					t.Fatalf("the interrupted execution: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the interrupted execution did not return")
			}
			res, out := run(t, m, a, "print x")
			if recover {
				if out != "41\n" || res.StateLost {
					t.Fatalf("recovered after a crash mid-execution: %q %+v", out, res)
				}
				return
			}
			wantLost(t, res)
			if res, _ := run(t, m, a, "set x 2"); res.StateLost {
				t.Fatalf("second execution after the restart: %+v", res)
			}
		})
	}
}

func TestVersion1PluginLosesStateExplicitly(t *testing.T) {
	m, cfg := newManager(t, "keeper", "sandbox \"keeper\" {\n  env = { KEEPER_PROTOCOL = \"1\" }\n}\n")
	a := open(t, m, "a")
	if v, err := m.Protocol(context.Background(), "keeper"); err != nil || v != 1 {
		t.Fatalf("negotiated protocol %d (%v), want 1", v, err)
	}
	run(t, m, a, "set x 41")
	killPlugin(t, m, "keeper")
	res, _ := run(t, m, a, "print x")
	if res.Error != sdk.ErrorException {
		t.Fatalf("a version-1 plugin recovered a session: %+v", res)
	}
	wantLost(t, res)
	if _, err := os.Stat(filepath.Join(keeperState(cfg), "recover.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RecoverSessions reached a version-1 plugin: %v", err)
	}
	if res, _ := run(t, m, a, "set x 1"); res.StateLost {
		t.Fatalf("second execution: %+v", res)
	}
}

func TestHostPythonRestartLosesVariablesKeepsFiles(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	m, cfg := newManager(t, "hostpython", "")
	a := open(t, m, "a")
	if res, _ := run(t, m, a, "x = 41\nopen('kept.txt', 'w').write('kept')"); !res.OK() {
		t.Fatalf("set-up: %+v", res)
	}

	// Killed between executions.
	killPlugin(t, m, "hostpython")
	res, _ := run(t, m, a, "print(x)")
	if res.Error != sdk.ErrorException || !strings.Contains(res.Message, "NameError") {
		t.Fatalf("x after the restart: %+v", res)
	}
	wantLost(t, res)
	res, out := run(t, m, a, "x = 1\nprint(open('kept.txt').read())")
	if out != "kept\n" || res.StateLost {
		t.Fatalf("second execution after the restart: %q %+v", out, res)
	}

	// Killed during an execution.
	errc := make(chan error, 1)
	go func() {
		_, err := m.Exec(context.Background(), a, "import time\nopen('running', 'w').close()\ntime.sleep(60)", 0, nil)
		errc <- err
	}()
	waitFile(t, filepath.Join(cfg.Workspace, "running"))
	killPlugin(t, m, "hostpython")
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPluginCrashed) {
			t.Fatalf("the interrupted execution: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted execution did not return")
	}
	res, _ = run(t, m, a, "print(x)")
	if !strings.Contains(res.Message, "NameError") {
		t.Fatalf("x after the second restart: %+v", res)
	}
	wantLost(t, res)
	if res, out := run(t, m, a, "print(open('kept.txt').read())"); out != "kept\n" || res.StateLost {
		t.Fatalf("after the second restart: %q %+v", out, res)
	}
}

// A kernel that dies while its session is idle is reported by the backend
// to the next execution, once. When that execution is the runtime's own
// (the replay recorder's state save right after a step), the caller's next
// execution must still say state_lost.
func TestKernelLossSeenByInternalExecutionReachesTheCaller(t *testing.T) {
	m, _ := newManager(t, "hostpython", "")
	m.SetInternal(func(code string) bool { return strings.HasPrefix(code, "# internal\n") })
	a := open(t, m, "a")
	// The kernel ends itself a moment after this execution returned.
	run(t, m, a, "x = 41\nimport os, threading\nthreading.Timer(0.2, lambda: os._exit(9)).start()")
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, _ := run(t, m, a, "# internal\npass")
		if res.StateLost {
			break // the runtime's own execution heard of the loss
		}
		if time.Now().After(deadline) {
			t.Fatal("no internal execution was told the kernel died")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, _ := run(t, m, a, "print(x)")
	if !res.StateLost || !strings.Contains(res.Message, "lost its variables") {
		t.Fatalf("the caller's first execution after the kernel died: %+v, want state_lost", res)
	}
	if res, _ := run(t, m, a, "x = 1"); res.StateLost {
		t.Fatalf("state_lost told twice: %+v", res)
	}
}
