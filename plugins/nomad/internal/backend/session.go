package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Directories in the allocation (init creates them): the session's
// working directory, a copy of the host workspace, and the root of its
// library mounts (importable, read-only).
const (
	sandboxWorkspace = "/local/workspace"
	libDir           = "/local/lib"
)

// session is one sdk session: the sdk's kernel.Session over allocations,
// one per kernel (the transport places or claims them).
type session struct {
	*kernel.Session
	spec *sdk.SessionSpec
	tr   *transport
	ws   *wsync
	// libsIn is the allocation the library mounts were copied into.
	libsIn *sandbox
}

// transport hands a session its kernels: the allocation it was created
// with first, then a new one each time its kernel ends.
type transport struct {
	e    *engine
	spec *sdk.SessionSpec

	mu    sync.Mutex
	first *sandbox
	cur   *sandbox
}

// Start implements kernel.Transport.
func (t *transport) Start(ctx context.Context) (kernel.Process, error) {
	t.mu.Lock()
	sb := t.first
	t.first = nil
	t.mu.Unlock()
	if sb == nil {
		var err error
		if sb, err = t.e.acquire(ctx, t.spec.ID, t.spec.Limits.MemoryBytes); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	t.cur = sb
	t.mu.Unlock()
	return sb, nil
}

// current is the allocation the session's kernel runs in, if any.
func (t *transport) current() *sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

func (e *engine) newSession(spec *sdk.SessionSpec, first *sandbox) *session {
	t := &transport{e: e, spec: spec, first: first}
	s := &session{spec: spec, tr: t, ws: newWsync(spec.Workspace)}
	s.Session = kernel.NewSession(kernel.SessionOptions{
		ID: spec.ID, Transport: t, Limits: spec.Limits, Host: spec.Host, Logger: e.log,
		Sandbox: "the session's allocation",
		Setup: kernel.Setup{
			Env: spec.Env, Cwd: sandboxWorkspace, ImportPaths: []string{libDir},
			MemoryBytes: spec.Limits.MemoryBytes, Reseed: true,
		},
		BeforeExec: s.beforeExec,
		AfterExec:  s.afterExec,
	})
	return s
}

// beforeExec brings the allocation's copy of the workspace (and, once
// per allocation, of the library mounts) up to date.
func (s *session) beforeExec(ctx context.Context, p kernel.Process) error {
	sb := p.(*sandbox)
	if s.libsIn != sb {
		if err := pushLibs(ctx, sb, s.spec); err != nil {
			return err
		}
		s.libsIn = sb
	}
	return s.ws.push(ctx, sb)
}

// afterExec copies what the code wrote in the workspace to the host, and
// kills what timed-out code left running in the allocation: the kernel
// survived the timeout, its code's processes must not.
func (s *session) afterExec(ctx context.Context, p kernel.Process, res *sdk.ExecResult) {
	sb, ok := p.(*sandbox)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if !sb.alive() {
		// The allocation ended with its kernel: its copy of the
		// workspace went with it.
		return
	}
	if res.Error == sdk.ErrorTimeout {
		s.killLeftovers(rctx, sb)
	}
	if err := s.ws.pull(rctx, sb); err != nil {
		// The code ran; what it wrote did not all reach the host.
		res.Message = strings.TrimPrefix(res.Message+"; ", "; ") + "copying the workspace back failed: " + err.Error()
		if res.Error == "" {
			res.Error = sdk.ErrorInternal
			if res.ExitCode == 0 {
				res.ExitCode = 1
			}
		}
		s.tr.e.log.Warn("workspace pull", "session", s.spec.ID, "error", err)
	}
}

func (s *session) killLeftovers(rctx context.Context, sb *sandbox) {
	if err := sb.killLeftovers(rctx); err != nil {
		s.tr.e.log.Warn("kill leftover processes", "session", s.spec.ID, "error", err)
		return
	}
	// They were the kernel's children: collect them.
	if err := sb.Conn().Reap(rctx); err != nil {
		s.tr.e.log.Warn("reap killed processes", "session", s.spec.ID, "error", err)
	}
}

// close ends the session and purges its allocation's job.
func (s *session) close(ctx context.Context) {
	if err := s.Close(ctx); err != nil {
		s.tr.e.log.Warn("close session", "session", s.spec.ID, "error", fmt.Sprint(err))
	}
	if sb := s.tr.current(); sb != nil {
		sb.Kill(ctx)
	}
}
