package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// newHub returns a Hub that starts nothing until asked.
func newHub(t *testing.T, servers []config.MCPServer, opts ...Option) *Hub {
	t.Helper()
	h, err := New(servers, nil, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pidOf(t *testing.T, h *Hub) int {
	t.Helper()
	r, _ := call(t, h, "pid", `{}`)
	pid, err := strconv.Atoi(strings.Trim(r, `"`))
	if err != nil {
		t.Fatalf("pid: %s", r)
	}
	return pid
}

func TestServerStartsOnFirstCall(t *testing.T) {
	h := newHub(t, []config.MCPServer{calc(nil)})
	if st := h.Status()[0]; st.State != StateIdle || st.PID != 0 || st.ToolsKnown {
		t.Fatalf("before any call: %+v", st)
	}
	if r, _ := call(t, h, "add", `{"a": 2, "b": 3}`); r != `"5"` {
		t.Fatalf("add = %s", r)
	}
	if st := h.Status()[0]; st.State != StateReady || st.PID == 0 || !st.ToolsKnown || len(st.Tools) == 0 {
		t.Fatalf("after a call: %+v", st)
	}
}

func TestCrashedServerRestartsOnNextCall(t *testing.T) {
	h := newHub(t, []config.MCPServer{calc(nil)})
	first := pidOf(t, h)
	_, err := h.CallTool(context.Background(), "calc", "crash", nil)
	if !errors.Is(err, ErrServerCrashed) || !strings.Contains(err.Error(), "exited during call crash") ||
		!strings.Contains(err.Error(), "crashing on purpose") || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("crash: %v", err)
	}
	second := pidOf(t, h)
	if second == first {
		t.Fatalf("same pid %d after the crash", first)
	}
	if st := h.Status()[0]; st.Restarts != 1 || st.State != StateReady {
		t.Fatalf("status after restart: %+v", st)
	}
	// Killed from outside while idle: the next call starts it again.
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill to be noticed", 5*time.Second, func() bool { return h.Status()[0].State != StateReady })
	if third := pidOf(t, h); third == second {
		t.Fatal("not restarted after SIGKILL")
	}
}

func TestServerThatKeepsCrashingBacksOff(t *testing.T) {
	h := newHub(t, []config.MCPServer{calc(nil)}, WithBackoff(time.Hour, time.Hour))
	if _, err := h.CallTool(context.Background(), "calc", "crash", nil); !errors.Is(err, ErrServerCrashed) {
		t.Fatalf("first crash: %v", err)
	}
	// The first crash restarts at once; a second one in a row waits.
	if _, err := h.CallTool(context.Background(), "calc", "crash", nil); !errors.Is(err, ErrServerCrashed) {
		t.Fatalf("second crash: %v", err)
	}
	waitFor(t, "the crash to be noticed", 5*time.Second, func() bool { return h.Status()[0].State == StateUnavailable })
	start := time.Now()
	_, err := h.CallTool(context.Background(), "calc", "add", json.RawMessage(`{"a":1,"b":1}`))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "next start attempt in") || time.Since(start) > time.Second {
		t.Fatalf("during backoff: %v after %s", err, time.Since(start))
	}
}

func TestUnavailableServerFailsFastAndDoesNotBlockOthers(t *testing.T) {
	ghost := config.MCPServer{Name: "ghost", Command: []string{"no-such-mcp-server-xyz"}}
	silent := calc(map[string]string{"TESTMCP_MODE": "hang"})
	silent.Name, silent.InitTimeout = "silent", 500*time.Millisecond
	h := newHub(t, []config.MCPServer{ghost, silent, calc(nil)}, WithBackoff(time.Hour, time.Hour))
	ctx := context.Background()

	_, err := h.CallTool(ctx, "ghost", "x", nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("ghost: %v", err)
	}
	start := time.Now()
	_, err = h.CallTool(ctx, "silent", "add", nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "init_timeout") {
		t.Fatalf("silent: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the silent server took %s, its init_timeout is 500ms", took)
	}
	// Later calls fail at once, with the reason, until the retry.
	start = time.Now()
	if _, err = h.CallTool(ctx, "silent", "add", nil); !errors.Is(err, ErrUnavailable) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("silent again: %v after %s", err, time.Since(start))
	}
	if r, _ := call(t, h, "add", `{"a": 1, "b": 2}`); r != `"3"` {
		t.Fatalf("the working server: %s", r)
	}
	st := h.Status()
	if st[0].State != StateUnavailable || !strings.Contains(st[0].Reason, "not found") || st[1].State != StateUnavailable || st[2].State != StateReady {
		t.Fatalf("status: %+v", st)
	}
}

func TestPerToolTimeout(t *testing.T) {
	s := calc(nil)
	s.Timeout = 5 * time.Second
	s.ToolTimeouts = map[string]time.Duration{"sleep": 300 * time.Millisecond}
	h := newHub(t, []config.MCPServer{s})
	start := time.Now()
	_, err := h.CallTool(context.Background(), "calc", "sleep", json.RawMessage(`{"ms": 10000}`))
	if !errors.Is(err, ErrToolTimeout) || !strings.Contains(err.Error(), "tool_timeouts") || time.Since(start) > 4*time.Second {
		t.Fatalf("timeout: %v after %s", err, time.Since(start))
	}
	// The server survives its tool's timeout.
	if r, _ := call(t, h, "add", `{"a": 1, "b": 1}`); r != `"2"` {
		t.Fatalf("after timeout: %s", r)
	}
}

// A call ends before the execution that makes it, so the cell can catch
// the timeout.
func TestCallEndsBeforeCallersDeadline(t *testing.T) {
	h := newHub(t, []config.MCPServer{calc(nil)})
	pidOf(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := h.CallTool(ctx, "calc", "sleep", json.RawMessage(`{"ms": 10000}`))
	if !errors.Is(err, ErrToolTimeout) || ctx.Err() != nil {
		t.Fatalf("got %v (caller's ctx: %v)", err, ctx.Err())
	}
}

func TestListingCacheServesToolsWithoutStarting(t *testing.T) {
	state := t.TempDir()
	h := newHub(t, []config.MCPServer{calc(nil)}, WithStateDir(state))
	changed := make(chan struct{}, 4)
	h.OnToolsChanged(func() { changed <- struct{}{} })
	if err := h.StartAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no tools-changed notice after the first listing")
	}
	live, err := h.Tools("calc")
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	h2 := newHub(t, []config.MCPServer{calc(nil)}, WithStateDir(state))
	st := h2.Status()[0]
	if st.State != StateIdle || !st.Cached || st.PID != 0 {
		t.Fatalf("second hub: %+v", st)
	}
	cached, err := h2.Tools("calc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cached, live) {
		t.Fatalf("cached tools differ:\n%+v\nlive:\n%+v", cached, live)
	}
	// Another command is another cache entry.
	other := calc(nil)
	other.Command = append(other.Command, "--flag")
	if st := newHub(t, []config.MCPServer{other}, WithStateDir(state)).Status()[0]; st.ToolsKnown {
		t.Fatalf("a changed command used the old listing: %+v", st)
	}
	entries, _ := os.ReadDir(state + "/mcp-tools")
	if len(entries) != 1 {
		t.Fatalf("cache entries: %v", entries)
	}
}

// A session opened before a server's listing arrived imports its tools by
// name and calls them.
func TestPendingStubsCallByName(t *testing.T) {
	h := newHub(t, []config.MCPServer{calc(nil)})
	root := t.TempDir()
	if err := h.WriteStubs(root + "/tools"); err != nil {
		t.Fatal(err)
	}
	const check = `
import sys, types, json
calls = []
fake = types.ModuleType("mcpruntime")
fake.call_tool = lambda server, tool, arguments=None: calls.append([server, tool, arguments]) or "ok"
sys.modules["mcpruntime"] = fake
from tools.calc import add
import tools.calc as calc
assert add(a=1, b=2) == "ok"
assert "not known yet" in calc.__getattr__.__doc__ and "not listed yet" in add.__doc__
try:
    calc.__wrapped__
except AttributeError:
    pass
else:
    raise AssertionError("dunder resolved")
print(json.dumps(calls))
`
	for _, py := range pythons(t) {
		cmd := exec.Command(py, "-B", "-c", check)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != `[["calc", "add", {"a": 1, "b": 2}]]` {
			t.Fatalf("%s: %v\n%s", py, err, out)
		}
	}
}
