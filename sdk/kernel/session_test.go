package kernel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// pythonTransport starts the kernel with the host's python3.
func pythonTransport(t *testing.T) *commandTransport {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	path, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &commandTransport{logger: hclog.NewNullLogger(), command: func() (*exec.Cmd, error) {
		cmd := exec.Command(py, "-I", "-B", path)
		cmd.Env = append(os.Environ(), startEnv...)
		return cmd, nil
	}}
}

func newTestSession(t *testing.T, opts SessionOptions) *Session {
	t.Helper()
	if opts.Transport == nil {
		opts.Transport = pythonTransport(t)
	}
	opts.ID = "s1"
	s := NewSession(opts)
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func execOut(t *testing.T, s *Session, code string) (*sdk.ExecResult, string) {
	t.Helper()
	var c collected
	res, err := s.Exec(context.Background(), &sdk.ExecRequest{SessionID: "s1", Code: code}, c.emit)
	if err != nil {
		t.Fatalf("exec %q: %v", code, err)
	}
	return res, c.stdout.String()
}

// Every kernel of a session, the first and each replacement, gets the
// session's setup: no backend runs a set-up cell of its own.
func TestSessionSetupReachesEveryKernel(t *testing.T) {
	ws, lib := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lib, "libmod.py"), []byte("VALUE = 'from lib'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestSession(t, SessionOptions{Setup: Setup{
		Env: map[string]string{"SESSION_VAR": "v1"}, Cwd: ws, ImportPaths: []string{lib},
		MemoryBytes: 1 << 30, Reseed: true,
	}})
	check := "import os, resource, libmod\nprint(os.environ['SESSION_VAR'], os.getcwd(), libmod.VALUE, resource.getrlimit(resource.RLIMIT_AS)[0])"
	want := "v1 " + ws + " from lib 1073741824\n"
	for round := 0; round < 2; round++ {
		res, out := execOut(t, s, check)
		if !res.OK() || out != want {
			t.Fatalf("round %d: %+v %q, want %q", round, res, out, want)
		}
		if res, _ := execOut(t, s, "import os; os._exit(3)"); res.Error != sdk.ErrorKernelDied {
			t.Fatalf("exit: %+v", res)
		}
	}
}

// A loss is told exactly once: by the result that saw it, or, when no
// result saw it, by the next one.
func TestSessionStateLostToldOnce(t *testing.T) {
	s := newTestSession(t, SessionOptions{})
	if res, _ := execOut(t, s, "x = 1"); res.StateLost {
		t.Fatalf("first exec: %+v", res)
	}
	if res, _ := execOut(t, s, "import os; os._exit(9)"); !res.StateLost || res.Error != sdk.ErrorKernelDied || res.ExitCode != 9 {
		t.Fatalf("death: %+v", res)
	}
	if res, _ := execOut(t, s, "x = 2"); res.StateLost {
		t.Fatalf("exec after a reported death repeats the loss: %+v", res)
	}
	// A death between executions (nobody was running code) is told once.
	var pid int
	if err := s.Hold(func(p Process) error { pid = p.(*Child).Pid(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return s.Hold(func(p Process) error {
			if p != nil {
				return errors.New("alive")
			}
			return nil
		}) == nil
	})
	res, out := execOut(t, s, "print('x' in globals())")
	if !res.StateLost || !strings.Contains(res.Message, "between executions") || out != "False\n" {
		t.Fatalf("after an idle death: %+v %q", res, out)
	}
	if res, _ := execOut(t, s, "pass"); res.StateLost {
		t.Fatalf("told twice: %+v", res)
	}
	s.MarkLost("the sandbox was replaced")
	if res, _ := execOut(t, s, "pass"); !res.StateLost || !strings.Contains(res.Message, "the sandbox was replaced") {
		t.Fatalf("MarkLost: %+v", res)
	}
}

// Cancelling a running execution interrupts the code and keeps the
// session's variables; code that ignores the interrupt costs the kernel,
// and the next result says so.
func TestSessionCancel(t *testing.T) {
	s := newTestSession(t, SessionOptions{Grace: 2 * time.Second})
	execOut(t, s, "kept = 'yes'")
	for _, c := range []struct {
		code string
		lost bool
	}{
		{"import time\nprint('running', flush=True)\nwhile True: time.sleep(0.01)", false},
		{"import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('running', flush=True)\nwhile True: time.sleep(0.01)", true},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		// Cancel once the code runs (it says so).
		started := func(e sdk.Event) {
			if e.Kind == sdk.EventStdout {
				cancel()
			}
		}
		res, err := s.Exec(ctx, &sdk.ExecRequest{SessionID: "s1", Code: c.code}, started)
		if res != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled exec: %+v %v", res, err)
		}
		res, out := execOut(t, s, "print(globals().get('kept'))")
		if res.StateLost != c.lost || (!c.lost && out != "yes\n") || (c.lost && out != "None\n") {
			t.Fatalf("after cancel (lost=%v): %+v %q", c.lost, res, out)
		}
	}
}

func TestSessionClosedRefuses(t *testing.T) {
	s := newTestSession(t, SessionOptions{})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := s.Exec(context.Background(), &sdk.ExecRequest{SessionID: "s1", Code: "pass"}, func(sdk.Event) {})
	if !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Fatalf("exec after close: %v", err)
	}
}

// Reap collects children the code left behind once they were killed.
func TestConnReap(t *testing.T) {
	s := newTestSession(t, SessionOptions{})
	// posix_spawn, not subprocess: a Popen object reaps its child itself.
	res, out := execOut(t, s, "import os\npid = os.posix_spawnp('sleep', ['sleep', '60'], dict(os.environ))\nprint(pid)")
	if !res.OK() {
		t.Fatalf("%+v", res)
	}
	child := strings.TrimSpace(out)
	execOut(t, s, "import signal; os.kill(pid, signal.SIGKILL)")
	zombie := func() bool {
		st, err := os.ReadFile("/proc/" + child + "/stat")
		return err == nil && strings.Contains(string(st), ") Z ")
	}
	waitFor(t, zombie)
	if err := s.Hold(func(p Process) error { return p.Conn().Reap(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !zombie() })
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
