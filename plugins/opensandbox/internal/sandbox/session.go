package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// session is one sdk session: a container of its own and its kernel.
type session struct {
	mu   sync.Mutex
	spec *sdk.SessionSpec
	box  *box
	// setup is run in every kernel of the session before user code: the
	// kernel started before the session existed (pool), so it learns its
	// working directory, environment and memory rlimit here.
	setup string
	// setupErr is why the first setup failed; the kernel is then replaced.
	setupErr error
}

// setupCode is the hidden cell that adapts a fresh kernel to a session. It
// runs in a throwaway namespace, so the session's globals stay clean.
func setupCode(spec *sdk.SessionSpec) (string, error) {
	env, err := json.Marshal(spec.Env)
	if err != nil {
		return "", err
	}
	if spec.Env == nil {
		env = []byte("{}")
	}
	var b strings.Builder
	// No json module: importing it (and re) would cost a pooled session
	// ~10 ms at claim time. A JSON object of strings is a Python literal.
	b.WriteString("import os, resource\n")
	// The kernel's cwd is the directory the workspace was mounted over.
	b.WriteString("os.chdir(" + strconv.Quote(sdk.GuestWorkspace) + ")\n")
	b.WriteString("os.environ.update(" + string(env) + ")\n")
	if m := spec.Limits.MemoryBytes; m > 0 {
		// As the sdk's local kernels do: allocations beyond the limit raise
		// MemoryError instead of waking the cgroup's OOM killer.
		fmt.Fprintf(&b, "resource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n", m, m)
	}
	return "exec(" + strconv.Quote(b.String()) + ", {})", nil
}

// warmupCode runs in pooled kernels before a session claims them: what the
// set-up cell and a first cell go through, without touching their globals.
var warmupCode = "exec(" + strconv.Quote("import os, resource\nx = [i for i in range(10)]\n") + ", {})"

// reapCode collects the kernel's dead children (all of them were killed).
var reapCode = "exec(" + strconv.Quote("import os\nwhile True:\n    try:\n        pid, _ = os.waitpid(-1, os.WNOHANG)\n    except ChildProcessError:\n        break\n    if pid == 0:\n        break") + ", {})"

// hidden runs code the user did not write and discards its output.
func hidden(ctx context.Context, k *kernelTask, code string) error {
	var out strings.Builder
	res, err := k.conn.Exec(ctx, kernel.Request{Code: code, Timeout: 30 * time.Second, Interrupt: k.interrupt},
		nil, func(e sdk.Event) {
			if e.Kind == sdk.EventStderr && out.Len() < 4096 {
				out.Write(e.Data)
			}
		})
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%s %s", res.Message, strings.TrimSpace(out.String()))
	}
	return nil
}

// sessionLimits are the cgroup limits for a session's spec.
func (e *engine) sessionLimits(l sdk.Limits) limits {
	out := e.defaults
	if l.MemoryBytes > 0 {
		out.memory = l.MemoryBytes
	}
	if l.Pids > 0 {
		out.pids = l.Pids
	}
	if l.CPUMillis > 0 {
		out.cpu = float64(l.CPUMillis) / 1000
	}
	return out
}

// claim turns a started container into the session's sandbox: mounts the
// workspace and libraries into its slot, sets its limits and runs the
// session setup in its kernel.
func (e *engine) claim(ctx context.Context, b *box, spec *sdk.SessionSpec) (*session, error) {
	if spec.Workspace == "" {
		return nil, errors.New("session has no workspace directory")
	}
	ws, err := filepath.Abs(spec.Workspace)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if st, err := os.Stat(ws); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("workspace %s is not a directory: %v", ws, err)
	}
	if err := bindInto(ws, b.slot.workspace(), false); err != nil {
		return nil, fmt.Errorf("mount workspace: %w", err)
	}
	for _, m := range spec.Mounts {
		rel, ok := strings.CutPrefix(filepath.Clean(m.Target), sdk.GuestLib+"/")
		if !ok || strings.Contains(rel, "..") {
			return nil, fmt.Errorf("mount target %s: only targets below %s are supported", m.Target, sdk.GuestLib)
		}
		dst := filepath.Join(b.slot.lib(), rel)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.Target, err)
		}
		// Everything below the library is read-only whatever the mount asks.
		if err := bindInto(m.Source, dst, true); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.Target, err)
		}
	}
	want := e.sessionLimits(spec.Limits)
	if err := b.cg.set(b.lim, want); err != nil {
		return nil, fmt.Errorf("session limits: %w", err)
	}
	b.lim = want
	setup, err := setupCode(spec)
	if err != nil {
		return nil, fmt.Errorf("session setup: %w", err)
	}
	s := &session{spec: spec, box: b, setup: setup}
	// The setup round trip overlaps with the reply to CreateSession and
	// the arrival of the first Execute, which waits for it on the lock.
	s.mu.Lock()
	go func() {
		defer s.mu.Unlock()
		if err := hidden(e.ctx, b.k, setup); err != nil {
			s.setupErr = fmt.Errorf("session setup in the kernel: %w", err)
		}
	}()
	return s, nil
}

// exec runs code like kernel.Local does: kernel deaths and code that
// cannot be stopped become results, and the kernel is replaced.
func (s *session) exec(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.box
	restarted := false
	if s.setupErr != nil {
		s.box.e.log.Warn("session setup failed; starting a fresh kernel", "session", s.spec.ID, "error", s.setupErr)
		s.setupErr = nil
		b.deleteTask(ctx, b.k)
		b.k = nil
	}
	if b.k == nil || !b.k.alive() {
		if err := s.restart(ctx); err != nil {
			return nil, err
		}
		restarted = true
	}
	k := b.k
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.spec.Limits.Timeout
	}
	start := time.Now()
	res, err := k.conn.Exec(ctx, kernel.Request{
		Code: req.Code, Timeout: timeout, OutputLimit: s.spec.Limits.OutputBytes,
		Interrupt: k.interrupt, Grace: 2 * time.Second,
	}, s.spec.Host, emit)
	switch {
	case err == nil:
		if res.Error == sdk.ErrorTimeout {
			// The kernel survived; what the code started must not.
			if n := b.cg.killAllBut(k.kernelPid); n > 0 {
				res.Message += fmt.Sprintf("; %d leftover process(es) of the code were killed", n)
				// They were the kernel's children: collect them, or their
				// zombies would keep counting against the pids limit.
				if err := hidden(ctx, k, reapCode); err != nil {
					s.box.e.log.Warn("reap killed processes", "session", s.spec.ID, "error", err)
				}
			}
		}
		res.StateLost = res.StateLost || restarted
		return res, nil
	case errors.Is(err, kernel.ErrUnresponsive):
		b.deleteTask(ctx, k)
		b.k = nil
		return &sdk.ExecResult{
			ExitCode: kernel.TimeoutExitCode, Error: sdk.ErrorTimeout, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("execution timed out after %s and did not stop when interrupted; the container's processes were killed and the session's variables are lost (workspace files are kept)", timeout),
		}, nil
	case errors.Is(err, kernel.ErrClosed):
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			k.kill()
			<-k.done
		}
		res := kernel.KernelDied(kernel.Exit{Code: k.ExitCode(), Reason: k.status(), Tail: k.stderr.String()}, time.Since(start))
		b.deleteTask(ctx, k)
		b.k = nil
		return res, nil
	default:
		// ctx ended: the code was interrupted, or the kernel is killed.
		if res == nil {
			b.deleteTask(ctx, k)
			b.k = nil
		}
		return nil, err
	}
}

// restart starts a fresh kernel in the session's container.
func (s *session) restart(ctx context.Context) error {
	if err := s.box.restartKernel(ctx); err != nil {
		return fmt.Errorf("session %s: restart kernel: %w", s.spec.ID, err)
	}
	if err := hidden(ctx, s.box.k, s.setup); err != nil {
		return fmt.Errorf("session %s: setup of the restarted kernel: %w", s.spec.ID, err)
	}
	return nil
}
