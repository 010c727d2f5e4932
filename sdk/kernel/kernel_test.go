package kernel

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func startPython(t *testing.T) *Session {
	t.Helper()
	return startSession(t, pythonTransport(t).command)
}

// startSession starts a Session on a child process transport.
func startSession(t *testing.T, command func() (*exec.Cmd, error)) *Session {
	t.Helper()
	l := NewSession(SessionOptions{ID: "test", Transport: &commandTransport{command: command, logger: hclog.NewNullLogger()},
		Grace: 500 * time.Millisecond})
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return l
}

type collected struct {
	mu             sync.Mutex
	stdout, stderr strings.Builder
	stdoutEvents   int
	calls          []*sdk.HostCallNotice
	displays       []*sdk.Display
	order          []sdk.EventKind
}

func (c *collected) emit(e sdk.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Kind {
	case sdk.EventStdout:
		c.stdout.Write(e.Data)
		c.stdoutEvents++
	case sdk.EventStderr:
		c.stderr.Write(e.Data)
	case sdk.EventHostCall:
		c.calls = append(c.calls, e.HostCall)
	case sdk.EventDisplay:
		c.displays = append(c.displays, e.Display)
	}
	c.order = append(c.order, e.Kind)
}

func run(t *testing.T, l *Session, code string, limits sdk.Limits, host sdk.Host) (*sdk.ExecResult, *collected) {
	t.Helper()
	c := &collected{}
	l.opts.Limits, l.opts.Host = limits, host // set per call by these tests
	res, err := l.Exec(context.Background(), &sdk.ExecRequest{SessionID: "test", Code: code}, c.emit)
	if err != nil {
		t.Fatalf("exec %q: %v", code, err)
	}
	return res, c
}

func TestKernelOutcomes(t *testing.T) {
	l := startPython(t)
	cases := []struct {
		code     string
		exit     int
		kind     sdk.ErrorKind
		stdout   string
		inStderr string
	}{
		{code: "print(6*7)", stdout: "42\n"},
		{code: "6*7", stdout: "42\n"},
		{code: "import sys; sys.exit(3)", exit: 3, kind: sdk.ErrorExit},
		{code: "import sys; sys.exit(0)"},
		{code: "import sys; sys.exit('bye')", exit: 1, kind: sdk.ErrorExit, inStderr: "bye"},
		{code: "def f(:\n  pass", exit: 1, kind: sdk.ErrorSyntax, inStderr: "SyntaxError"},
		{code: "1/0", exit: 1, kind: sdk.ErrorException, inStderr: "ZeroDivisionError"},
		{code: "import sys; print('err', file=sys.stderr)", inStderr: "err\n"},
		{code: "import subprocess; r = subprocess.run(['echo', 'from-child'])", stdout: "from-child\n"},
	}
	for _, tc := range cases {
		res, out := run(t, l, tc.code, sdk.Limits{}, nil)
		if res.ExitCode != tc.exit || res.Error != tc.kind {
			t.Errorf("%q: exit %d kind %q, want %d %q (%s)", tc.code, res.ExitCode, res.Error, tc.exit, tc.kind, res.Message)
		}
		if tc.stdout != "" && out.stdout.String() != tc.stdout {
			t.Errorf("%q: stdout %q, want %q", tc.code, out.stdout.String(), tc.stdout)
		}
		if !strings.Contains(out.stderr.String(), tc.inStderr) {
			t.Errorf("%q: stderr %q lacks %q", tc.code, out.stderr.String(), tc.inStderr)
		}
	}
	res, _ := run(t, l, "1/0", sdk.Limits{}, nil)
	if res.Exception == nil || res.Exception.Type != "ZeroDivisionError" || strings.Contains(res.Exception.Traceback, FileName) {
		t.Errorf("exception info %+v: want ZeroDivisionError without kernel frames", res.Exception)
	}
}

func TestKernelStatePersists(t *testing.T) {
	l := startPython(t)
	run(t, l, "x = 41", sdk.Limits{}, nil)
	_, out := run(t, l, "print(x + 1)", sdk.Limits{}, nil)
	if out.stdout.String() != "42\n" {
		t.Fatalf("got %q", out.stdout.String())
	}
}

func TestKernelTimeoutInterruptKeepsState(t *testing.T) {
	l := startPython(t)
	run(t, l, "y = 'kept'", sdk.Limits{}, nil)
	res, _ := run(t, l, "while True: pass", sdk.Limits{Timeout: 300 * time.Millisecond}, nil)
	if res.Error != sdk.ErrorTimeout || res.ExitCode != TimeoutExitCode || res.StateLost {
		t.Fatalf("timeout result %+v", res)
	}
	_, out := run(t, l, "print(y)", sdk.Limits{}, nil)
	if out.stdout.String() != "kept\n" {
		t.Fatalf("state after interrupt: %q", out.stdout.String())
	}
}

func TestKernelUnstoppableCodeIsKilled(t *testing.T) {
	l := startPython(t)
	code := "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass\n"
	res, _ := run(t, l, code, sdk.Limits{Timeout: 200 * time.Millisecond}, nil)
	if res.Error != sdk.ErrorTimeout || !res.StateLost {
		t.Fatalf("want timeout with state lost, got %+v", res)
	}
	_, out := run(t, l, "print('alive')", sdk.Limits{}, nil)
	if out.stdout.String() != "alive\n" {
		t.Fatalf("next exec: %q", out.stdout.String())
	}
}

func TestKernelDeathIsReported(t *testing.T) {
	l := startPython(t)
	res, _ := run(t, l, "import os; os._exit(9)", sdk.Limits{}, nil)
	if res.Error != sdk.ErrorKernelDied || res.ExitCode != 9 || !res.StateLost {
		t.Fatalf("want kernel_died exit 9, got %+v", res)
	}
	res, _ = run(t, l, "import ctypes; ctypes.string_at(0)", sdk.Limits{}, nil)
	if res.Error != sdk.ErrorKernelDied || res.ExitCode != 128+11 {
		t.Fatalf("want segfault as kernel_died 139, got %+v", res)
	}
	_, out := run(t, l, "print('again')", sdk.Limits{}, nil)
	if out.stdout.String() != "again\n" {
		t.Fatalf("after death: %q", out.stdout.String())
	}
}

func TestKernelOutputCap(t *testing.T) {
	l := startPython(t)
	res, out := run(t, l, "for i in range(200000): print('x' * 100)", sdk.Limits{OutputBytes: 10000}, nil)
	if !res.OutputTruncated || out.stdout.Len() != 10000 || res.ExitCode != 0 {
		t.Fatalf("truncated=%v len=%d exit=%d", res.OutputTruncated, out.stdout.Len(), res.ExitCode)
	}
	res, out = run(t, l, "print('y' * 50_000_000)", sdk.Limits{OutputBytes: 1000}, nil)
	if !res.OutputTruncated || out.stdout.Len() != 1000 {
		t.Fatalf("huge line: truncated=%v len=%d", res.OutputTruncated, out.stdout.Len())
	}
}

type echoHost struct{}

func (echoHost) CallTool(_ context.Context, c *sdk.ToolCall) (*sdk.ToolResult, error) {
	if c.Tool == "fail" {
		return nil, errors.New("tool exploded")
	}
	return &sdk.ToolResult{Result: c.Arguments}, nil
}

func (echoHost) AskLLM(_ context.Context, r *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return &sdk.LLMResponse{Text: "pong: " + r.Prompt}, nil
}

func TestKernelHostCalls(t *testing.T) {
	l := startPython(t)
	res, out := run(t, l, "print(ask_llm('ping'))\nimport mcpruntime\nprint(mcpruntime.call_tool('s', 't', a=1)['a'])", sdk.Limits{}, echoHost{})
	if !res.OK() || out.stdout.String() != "pong: ping\n1\n" {
		t.Fatalf("res %+v stdout %q stderr %q", res, out.stdout.String(), out.stderr.String())
	}
	if len(out.calls) != 2 || out.calls[0].Method != "ask_llm" || out.calls[1].Detail != "s.t" {
		t.Fatalf("notices %+v", out.calls)
	}
	res, out = run(t, l, "import mcpruntime\ntry:\n  mcpruntime.call_tool('s','fail')\nexcept mcpruntime.HostCallError as e:\n  print('refused:', e)", sdk.Limits{}, echoHost{})
	if !res.OK() || !strings.Contains(out.stdout.String(), "tool exploded") {
		t.Fatalf("failing tool: %+v %q", res, out.stdout.String())
	}
	res, _ = run(t, l, "ask_llm('x')", sdk.Limits{}, nil)
	if res.Exception == nil || res.Exception.Type != "HostCallError" {
		t.Fatalf("no host: %+v", res)
	}
}

func TestKernelSaveLoadState(t *testing.T) {
	l := startPython(t)
	dir := t.TempDir()
	run(t, l, "import math as m\nclass P:\n  def __init__(s, v): s.v = v\ndef f(a: int) -> int:\n  return a * 2\np = P(5)\nn = [1, 2]\ng = (i for i in range(3))", sdk.Limits{}, nil)
	res, out := run(t, l, "import mcpruntime\nr = mcpruntime.save_state('"+dir+"/s.pkl')\nprint(sorted(r['skipped']))", sdk.Limits{}, nil)
	if !res.OK() || out.stdout.String() != "['g']\n" {
		t.Fatalf("save: %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
	l2 := startPython(t)
	res, out = run(t, l2, "import mcpruntime\nr = mcpruntime.load_state('"+dir+"/s.pkl')\nprint(f(p.v), n, m.pi > 3, sorted(r['failed']))", sdk.Limits{}, nil)
	if !res.OK() || out.stdout.String() != "10 [1, 2] True ['g']\n" {
		t.Fatalf("load: %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
}

func TestKernelForkedChildDoesNotTouchChannel(t *testing.T) {
	l := startPython(t)
	code := "import os, sys\npid = os.fork()\nif pid == 0:\n    print('from child')\n    sys.stdout.flush()\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('from parent')"
	res, out := run(t, l, code, sdk.Limits{}, nil)
	if !res.OK() || !strings.Contains(out.stdout.String(), "from child\n") || !strings.Contains(out.stdout.String(), "from parent\n") {
		t.Fatalf("fork: %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
	_, out = run(t, l, "print('channel intact')", sdk.Limits{}, nil)
	if out.stdout.String() != "channel intact\n" {
		t.Fatalf("after fork: %q", out.stdout.String())
	}
}

func TestKernelConfigure(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	path, _ := Install(t.TempDir())
	cmd := exec.Command(py, "-I", "-B", path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	c := NewConn(stdout, stdin)
	ctx := context.Background()
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := c.Configure(ctx, Setup{Env: map[string]string{"GREETING": "hi"}, Cwd: dir, ForgetImportCaches: true, Preload: []string{"json"}}); err != nil {
		t.Fatal(err)
	}
	var out collected
	res, err := c.Exec(ctx, Request{Code: "import os, sys\nprint(os.environ['GREETING'], os.getcwd(), 'json' in sys.modules, 'json' in globals())"}, nil, out.emit)
	if err != nil || !res.OK() || out.stdout.String() != "hi "+dir+" True False\n" {
		t.Fatalf("after configure: %v %+v %q %q", err, res, out.stdout.String(), out.stderr.String())
	}
	// The first user cell is cell 1: set-up is not a cell.
	res, _ = c.Exec(ctx, Request{Code: "1/0"}, nil, out.emit)
	if res.Exception == nil || !strings.Contains(res.Exception.Traceback, "<cell-2>") {
		t.Fatalf("cell numbering: %+v", res.Exception)
	}
	if err := c.Configure(ctx, Setup{Cwd: "/nonexistent", Preload: []string{"no_such_module"}}); err == nil ||
		!strings.Contains(err.Error(), "no_such_module") || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("failed configure: %v", err)
	}
}

// The kernel's start-up imports stay lean: the json package and linecache
// (which pull in re, enum and functools) cost ~15 ms of every cold start.
func TestKernelStartsWithoutHeavyImports(t *testing.T) {
	l := startPython(t)
	_, out := run(t, l, "import sys; print(sorted(m for m in ('json', 'linecache', 'tokenize') if m in sys.modules))", sdk.Limits{}, nil)
	if got := out.stdout.String(); got != "[]\n" {
		t.Fatalf("modules loaded at start-up: %s", got)
	}
}

// Cell sources reach linecache however late it is imported: tracebacks show
// the failing line, and inspect finds a function defined in an earlier cell
// even when the cell that asks is the one importing inspect.
func TestKernelCellSourcesReachLinecache(t *testing.T) {
	l := startPython(t)
	run(t, l, "def double(x):\n    return 2 * x  # doubled\n", sdk.Limits{}, nil)
	_, out := run(t, l, "import inspect\nprint(inspect.getsource(double))", sdk.Limits{}, nil)
	if !strings.Contains(out.stdout.String(), "return 2 * x  # doubled") {
		t.Fatalf("getsource across cells: stdout %q stderr %q", out.stdout.String(), out.stderr.String())
	}
	res, _ := run(t, l, "def boom():\n    raise KeyError('unique-marker')\nboom()", sdk.Limits{}, nil)
	if res.Exception == nil || !strings.Contains(res.Exception.Traceback, "raise KeyError('unique-marker')") {
		t.Fatalf("traceback lacks the cell's source line: %+v", res.Exception)
	}
}

// Frames carry whatever text and values sandbox code produces.
func TestKernelFramesCarryAnyText(t *testing.T) {
	l := startPython(t)
	code := "print('é ✓ \\u2028 \"q\" \\\\ \\x00 <&>')\nclass O: pass\nO()"
	res, out := run(t, l, code, sdk.Limits{}, nil)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d: %s", res.ExitCode, out.stderr.String())
	}
	want := "é ✓ \u2028 \"q\" \\ \x00 <&>\n"
	if !strings.HasPrefix(out.stdout.String(), want) || !strings.Contains(out.stdout.String(), "<__main__.O object at") {
		t.Fatalf("stdout %q, want prefix %q and the object's repr", out.stdout.String(), want)
	}
}

// A print is one output event (print writes the value, then "\n"): each
// event is a frame and a stream message on every hop to the caller.
func TestKernelPrintIsOneEvent(t *testing.T) {
	l := startPython(t)
	time.Sleep(10 * time.Millisecond) // past the coalescing window of start-up output
	_, out := run(t, l, "print(1+1)", sdk.Limits{}, nil)
	if out.stdout.String() != "2\n" || out.stdoutEvents != 1 {
		t.Fatalf("stdout %q in %d events, want \"2\\n\" in 1", out.stdout.String(), out.stdoutEvents)
	}
}

// The value of a cell's last expression is shown as the REPL shows it: its
// repr, unless None, and kept in `_`; only the last statement counts.
func TestKernelShowsLastExpression(t *testing.T) {
	l := startPython(t)
	cases := []struct{ code, stdout string }{
		{"x = 5\nx * 2", "10\n"},
		{"print(_ + 1)", "11\n"},
		{"y = 3; y", "3\n"},
		{"'a' + 'b'", "'ab'\n"},
		{"None", ""},
		{"[1, 2]\nz = 4", ""},
		{"for i in range(2):\n    pass\ni", "1\n"},
		{"(\n  1 +\n  2\n)", "3\n"},
		{"'__mcpruntime_show__' in globals()", "False\n"},
	}
	for _, tc := range cases {
		res, out := run(t, l, tc.code, sdk.Limits{}, nil)
		if !res.OK() || out.stdout.String() != tc.stdout {
			t.Errorf("%q: stdout %q (%s), want %q", tc.code, out.stdout.String(), res.Message, tc.stdout)
		}
	}
	// A failing last expression is reported at its own line of the cell.
	res, out := run(t, l, "a = 1\n\n1 / 0", sdk.Limits{}, nil)
	if res.Error != sdk.ErrorException || !strings.Contains(out.stderr.String(), "line 3") {
		t.Fatalf("error in the last expression: %s, stderr %q; want ZeroDivisionError at line 3", res.Message, out.stderr.String())
	}
}
