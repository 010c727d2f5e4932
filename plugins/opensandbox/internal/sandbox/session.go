package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// session is one sdk session: the sdk's kernel.Session over the kernels of
// a container of its own (the box is its Transport).
type session struct {
	*kernel.Session
	spec *sdk.SessionSpec
	box  *box
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

// workspaceOf is the absolute workspace directory of spec.
func workspaceOf(spec *sdk.SessionSpec) (string, error) {
	if spec.Workspace == "" {
		return "", errors.New("session has no workspace directory")
	}
	ws, err := filepath.Abs(spec.Workspace)
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	if st, err := os.Stat(ws); err != nil || !st.IsDir() {
		return "", fmt.Errorf("workspace %s is not a directory: %v", ws, err)
	}
	return ws, nil
}

// claim turns a started container into the session's sandbox: mounts the
// workspace and libraries into its slot, sets its limits and records the
// session in the slot (for RecoverSessions). The kernel learns its
// session from the Setup the Session applies to it.
func (e *engine) claim(b *box, spec *sdk.SessionSpec) (*session, error) {
	ws, err := workspaceOf(spec)
	if err != nil {
		return nil, err
	}
	mounts, err := sdk.LibMounts(spec)
	if err != nil {
		return nil, err
	}
	if err := bindInto(ws, b.slot.workspace(), false); err != nil {
		return nil, fmt.Errorf("mount workspace: %w", err)
	}
	for _, m := range mounts {
		dst := filepath.Join(b.slot.lib(), m.Rel)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.Rel, err)
		}
		// Everything below the library is read-only whatever the mount asks.
		if err := bindInto(m.Source, dst, true); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.Rel, err)
		}
	}
	want := e.sessionLimits(spec.Limits)
	if err := b.cg.set(b.lim, want); err != nil {
		return nil, fmt.Errorf("session limits: %w", err)
	}
	b.lim = want
	if err := writeRecord(b.slot, sessionRecord{ID: spec.ID, Workspace: ws, Grace: e.s.recoveryGrace, Core: e.core}); err != nil {
		return nil, err
	}
	return e.newSession(spec, b), nil
}

// newSession runs spec's session on the kernels of b.
func (e *engine) newSession(spec *sdk.SessionSpec, b *box) *session {
	s := &session{spec: spec, box: b}
	s.Session = kernel.NewSession(kernel.SessionOptions{
		ID: spec.ID, Transport: b, Limits: spec.Limits, Host: spec.Host, Logger: e.log,
		Sandbox: "the kernel's task (with every process in the container)",
		// The kernel started before its session (pool) or after the
		// session's kernel died: it learns the session here. Its working
		// directory is re-entered because the workspace was mounted over
		// the directory it started in.
		Setup: kernel.Setup{
			Env: spec.Env, Cwd: sdk.GuestWorkspace, MemoryBytes: spec.Limits.MemoryBytes, Reseed: true,
		},
		AfterExec: s.afterExec,
	})
	return s
}

// afterExec kills what timed-out code left running: the kernel survived
// the timeout, its code's processes must not.
func (s *session) afterExec(ctx context.Context, p kernel.Process, res *sdk.ExecResult) {
	if res.Error != sdk.ErrorTimeout {
		return
	}
	k, ok := p.(*kernelTask)
	if !ok || !k.alive() {
		return
	}
	n := s.box.cg.killAllBut(k.kernelPid)
	if n == 0 {
		return
	}
	res.Message += fmt.Sprintf("; %d leftover process(es) of the code were killed", n)
	// They were the kernel's children: collect them, or their zombies
	// would keep counting against the pids limit.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := k.Conn().Reap(rctx); err != nil {
		s.box.e.log.Warn("reap killed processes", "session", s.spec.ID, "error", err)
	}
}

// close stops the session's kernel and removes its container.
func (s *session) close(ctx context.Context) {
	if err := s.Close(ctx); err != nil {
		s.box.e.log.Warn("close session", "session", s.spec.ID, "error", err)
	}
	s.box.destroy(ctx)
}

// warmModules are imported by pooled kernels before a session claims
// them: the session's Setup uses resource (the memory rlimit), and the
// kernel's first cell imports select (draining the fd pipes). The pool's
// warm-up cell paid for both before; without them the first exec of a
// pooled session was ~0.35 ms slower.
var warmModules = []string{"resource", "select"}

// warm prepares a pooled container's kernel ahead of its session. No
// names are bound in the kernel's globals.
func (e *engine) warm(ctx context.Context, b *box) error {
	return b.k.Conn().Configure(ctx, kernel.Setup{Preload: warmModules})
}
