package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// session is one sdk session: its spec, the host directory standing in for
// /mcpruntime/lib, and the worker currently serving it (nil after the
// previous one was lost; the next exec takes a new one).
type session struct {
	spec   *sdk.SessionSpec
	lib    string
	run    *runDir // holds lib; the session holds a reference to it
	memory int64

	mu sync.Mutex
	w  *proc
}

// newSession prepares the import root for spec's mounts. Mounts must sit
// below sdk.GuestLib: WASI mount points are fixed when an instance starts,
// before a pooled worker knows its session, and /mcpruntime/lib is the one
// that is re-pointed per session.
func newSession(spec *sdk.SessionSpec, run *runDir, memory int64) (*session, error) {
	root := run.path
	if spec.Workspace == "" {
		return nil, fmt.Errorf("session %s: no workspace", spec.ID)
	}
	ws, err := filepath.Abs(spec.Workspace)
	if err != nil {
		return nil, fmt.Errorf("session %s: workspace: %w", spec.ID, err)
	}
	if st, err := os.Stat(ws); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("session %s: workspace %s is not a directory", spec.ID, ws)
	}
	spec2 := *spec
	spec2.Workspace = ws
	lib, err := os.MkdirTemp(root, "lib-")
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	for _, m := range spec.Mounts {
		rel, ok := strings.CutPrefix(filepath.Clean(m.Target), sdk.GuestLib+"/")
		if !ok || rel == "" || strings.Contains(rel, "..") {
			os.RemoveAll(lib)
			return nil, fmt.Errorf("session %s: mount target %s is not below %s (the wasm backend mounts only there)", spec.ID, m.Target, sdk.GuestLib)
		}
		dst := filepath.Join(lib, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			os.RemoveAll(lib)
			return nil, fmt.Errorf("session %s: mount %s: %w", spec.ID, m.Target, err)
		}
		src, err := filepath.Abs(m.Source)
		if err == nil {
			err = os.Symlink(src, dst)
		}
		if err != nil {
			os.RemoveAll(lib)
			return nil, fmt.Errorf("session %s: mount %s: %w", spec.ID, m.Target, err)
		}
	}
	return &session{spec: &spec2, lib: lib, run: run, memory: memory}, nil
}

// attach gives the session a worker bound to its directories.
func (s *session) attach(ctx context.Context, p *pool) error {
	start := time.Now()
	w, pooled, err := p.get(ctx, s.memory)
	if err != nil {
		return fmt.Errorf("session %s: %w", s.spec.ID, err)
	}
	got := time.Now()
	if err := w.bind(ctx, s.spec.Workspace, s.lib, s.spec.Env); err != nil {
		w.kill()
		return fmt.Errorf("session %s: %w", s.spec.ID, err)
	}
	p.logger.Debug("session attached", "session", s.spec.ID, "pooled", pooled, "get", got.Sub(start), "bind", time.Since(got))
	s.w = w
	return nil
}

// exec runs code, replacing the worker first if the last one was lost.
// Kernel deaths and timeouts are results, not errors.
func (s *session) exec(ctx context.Context, p *pool, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	restarted := false
	if s.w == nil || !s.w.alive() {
		if s.w != nil {
			s.w.kill()
			s.w = nil
		}
		if err := s.attach(ctx, p); err != nil {
			return nil, err
		}
		restarted = true
	}
	w := s.w
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.spec.Limits.Timeout
	}
	start := time.Now()
	// No Interrupt: WASI has no signals, and a check inside compiled code
	// slows all Python down. A timeout kills the worker instead.
	res, err := w.conn.Exec(ctx, kernel.Request{Code: req.Code, Timeout: timeout, OutputLimit: s.spec.Limits.OutputBytes},
		s.spec.Host, emit)
	switch {
	case err == nil:
		res.StateLost = res.StateLost || restarted
		return res, nil
	case ctx.Err() != nil:
		w.kill()
		s.w = nil
		return nil, ctx.Err()
	case errors.Is(err, kernel.ErrUnresponsive):
		w.kill()
		s.w = nil
		return &sdk.ExecResult{
			ExitCode: kernel.TimeoutExitCode, Error: sdk.ErrorTimeout, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("execution timed out after %s; the WebAssembly instance was stopped and the session's variables are lost (workspace files are kept); the next execution starts a fresh kernel", timeout),
		}, nil
	case errors.Is(err, kernel.ErrClosed):
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
			w.kill()
		}
		s.w = nil
		return kernel.KernelDied(w.cmd.ProcessState, w.status+w.tail.Suffix("kernel stderr"), time.Since(start)), nil
	default:
		w.kill()
		s.w = nil
		return nil, fmt.Errorf("session %s: %w", s.spec.ID, err)
	}
}

// close stops the worker and removes the import root.
func (s *session) close() {
	s.mu.Lock()
	w := s.w
	s.w = nil
	s.mu.Unlock()
	if w != nil {
		w.stop()
	}
	os.RemoveAll(s.lib)
}
