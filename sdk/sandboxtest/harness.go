package sandboxtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Executor is what a Harness drives: a launched plugin (host.Plugin) or a
// backend served in process.
type Executor interface {
	CreateSession(ctx context.Context, spec *sdk.SessionSpec) error
	Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error)
}

// Harness runs sessions of one workspace for a plugin's own tests (hostile
// code, recovery, placement) beyond the conformance suite, so that every
// plugin does not carry its own copy.
type Harness struct {
	B Executor
	// Workspace is every session's workspace.
	Workspace string
	// Prefix starts the session ids (default "test").
	Prefix string
	// ExecTimeout bounds each Exec (default 2 min).
	ExecTimeout time.Duration

	mu  sync.Mutex
	seq int
}

// Session creates a session with limits (a 30 s timeout when none) and
// returns its id; it fails the test on error.
func (h *Harness) Session(t testing.TB, limits sdk.Limits) string {
	t.Helper()
	h.mu.Lock()
	h.seq++
	prefix := h.Prefix
	if prefix == "" {
		prefix = "test"
	}
	id := fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6, h.seq)
	h.mu.Unlock()
	if limits.Timeout == 0 {
		limits.Timeout = 30 * time.Second
	}
	if err := h.B.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: h.Workspace, Limits: limits}); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return id
}

// Exec runs code in session id and collects what it printed; an error of
// the plugin (not of the code) fails the test.
func (h *Harness) Exec(t testing.TB, id, code string) Output {
	t.Helper()
	var mu sync.Mutex
	var out, errb strings.Builder
	d := h.ExecTimeout
	if d <= 0 {
		d = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := h.B.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: code}, func(e sdk.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case sdk.EventStdout:
			out.Write(e.Data)
		case sdk.EventStderr:
			errb.Write(e.Data)
		}
	})
	if err != nil {
		t.Fatalf("execute %q: %v", clip(code), err)
	}
	return Output{Result: res, Stdout: out.String(), Stderr: errb.String()}
}

// Expect runs code and requires success and exactly stdout.
func (h *Harness) Expect(t testing.TB, id, code, stdout string) {
	t.Helper()
	o := h.Exec(t, id, code)
	if !o.Result.OK() || o.Stdout != stdout {
		t.Fatalf("%q: ok=%v stdout=%q want %q; %s stderr=%q", clip(code), o.Result.OK(), o.Stdout, stdout, o.Result.Message, o.Stderr)
	}
}

// MemoryBombKillsKernel allocates 3 GiB in a session without a memory
// rlimit: the sandbox's own cap (a cgroup, an allocation's limit) must
// kill the kernel and say so; the session then starts afresh.
func (h *Harness) MemoryBombKillsKernel(t testing.TB) {
	t.Helper()
	id := h.Session(t, sdk.Limits{})
	h.Expect(t, id, "keep = 1", "")
	o := h.Exec(t, id, "b = bytearray(3 * 1024**3)")
	if o.Result.OK() || o.Result.Error != sdk.ErrorKernelDied || !o.Result.StateLost || !strings.Contains(o.Result.Message, "memory") {
		t.Fatalf("memory bomb: %+v", o.Result)
	}
	h.Expect(t, id, "print('keep' in globals())", "False\n")
}

// MemoryBombUnderRlimit allocates past a 256 MiB session limit: a
// MemoryError in the code, and the session keeps its variables.
func (h *Harness) MemoryBombUnderRlimit(t testing.TB) {
	t.Helper()
	id := h.Session(t, sdk.Limits{MemoryBytes: 256 << 20})
	h.Expect(t, id, "keep = 1", "")
	o := h.Exec(t, id, "b = bytearray(512 * 1024**2)")
	if o.Result.Error != sdk.ErrorMemory || o.Result.StateLost {
		t.Fatalf("memory bomb under an rlimit: %+v", o.Result)
	}
	h.Expect(t, id, "print(keep)", "1\n")
}
