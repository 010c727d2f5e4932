package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// session is one sandbox session: a VM (replaced if it dies) plus the
// workspace and library mirrors.
type session struct {
	b    *Backend
	spec *sdk.SessionSpec

	mu     sync.Mutex
	v      *vm
	ws     *syncer
	libs   []*syncer
	closed bool
	// lossReported: the last result already told the caller the state was
	// lost, so the restart that follows need not say it again.
	lossReported bool
}

func (b *Backend) newSession(spec *sdk.SessionSpec) *session {
	s := &session{b: b, spec: spec, ws: newSyncer(spec.Workspace, proto.TreeWorkspace, b.cfg.maxWorkspace)}
	for _, m := range spec.Mounts {
		if rel, ok := strings.CutPrefix(m.Target, sdk.GuestLib+"/"); ok && validRel(rel) {
			l := newSyncer(m.Source, proto.TreeLib, b.cfg.maxWorkspace)
			l.prefix = rel
			s.libs = append(s.libs, l)
		}
	}
	return s
}

func (s *session) sessionConfig() *proto.SessionConfig {
	c := &proto.SessionConfig{Env: s.spec.Env, MemoryBytes: s.spec.Limits.MemoryBytes, Pids: s.spec.Limits.Pids}
	for _, l := range s.libs {
		c.LibDirs = append(c.LibDirs, l.prefix)
	}
	return c
}

// attach gives v to the session: libraries, settings, workspace.
func (s *session) attach(ctx context.Context, v *vm, wipe bool) error {
	if wipe {
		if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpWipe}); err != nil {
			return err
		}
	}
	for _, l := range s.libs {
		l.reset()
		if err := l.push(ctx, v.agent); err != nil {
			return fmt.Errorf("copy %s into the VM: %w", l.dir, err)
		}
	}
	if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpAttach, Session: s.sessionConfig()}); err != nil {
		return err
	}
	s.ws.reset()
	if err := s.ws.push(ctx, v.agent); err != nil {
		return err
	}
	s.v = v
	return nil
}

// ensure makes sure the session has a live VM and kernel. It reports
// whether either was replaced.
func (s *session) ensure(ctx context.Context) (replaced bool, err error) {
	if s.v != nil && !s.v.alive() {
		s.b.log.Warn("session VM died; replacing it", "session", s.spec.ID, "vm", s.v.id, "why", s.v.m.Describe())
		s.v.destroy()
		s.v = nil
	}
	if s.v == nil {
		p, err := s.b.configured()
		if err != nil {
			return false, err
		}
		v, err := p.get(ctx)
		if err != nil {
			return false, err
		}
		if err := s.attach(ctx, v, false); err != nil {
			v.destroy()
			return false, fmt.Errorf("prepare VM for session %s: %w", s.spec.ID, err)
		}
		return true, nil
	}
	if !s.v.kernelAlive() {
		if err := s.v.startKernel(ctx); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

func (s *session) execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, s.spec.ID)
	}
	start := time.Now()
	replaced, err := s.ensure(ctx)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", s.spec.ID, err)
	}
	v := s.v
	if err := s.ws.push(ctx, v.agent); err != nil {
		return nil, fmt.Errorf("session %s: workspace: %w", s.spec.ID, err)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.spec.Limits.Timeout
	}
	interrupt := func() error {
		ictx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := v.agent.call(ictx, &proto.Msg{Op: proto.OpInterrupt})
		return err
	}
	gen := v.gen
	res, err := v.conn.Exec(ctx, kernel.Request{
		Code: req.Code, Timeout: timeout, OutputLimit: s.spec.Limits.OutputBytes, Interrupt: interrupt, Grace: s.b.cfg.grace,
	}, s.spec.Host, emit)
	switch {
	case err == nil:
		res.StateLost = res.StateLost || (replaced && !s.lossReported)
		s.lossReported = false
		s.pullInto(ctx, res)
		return res, nil
	case errors.Is(err, kernel.ErrUnresponsive):
		s.b.log.Warn("guest did not stop after an interrupt; killing the VM", "session", s.spec.ID, "vm", v.id)
		v.destroy()
		s.v = nil
		s.lossReported = true
		return &sdk.ExecResult{
			ExitCode: kernel.TimeoutExitCode, Error: sdk.ErrorTimeout, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("execution timed out after %s and the microVM did not stop it when interrupted; the VM was killed and the session's variables are lost (workspace files synced before this execution are kept; the next execution gets a fresh VM)", timeout),
		}, nil
	case errors.Is(err, kernel.ErrClosed):
		if ex := s.waitExit(v, gen); ex != nil {
			s.lossReported = true
			res := kernel.KernelDied(kernel.Exit{Code: ex.ExitCode, Reason: ex.Status, Tail: ex.Tail}, time.Since(start))
			s.pullInto(ctx, res)
			return res, nil
		}
		// The channel closed without a kernel exit: the VM itself died
		// (guest kernel panic, agent crash, VMM killed).
		select {
		case <-v.m.Done():
		case <-time.After(3 * time.Second):
		}
		why := v.m.Describe()
		v.destroy()
		s.v = nil
		s.lossReported = true
		return &sdk.ExecResult{
			ExitCode: 1, Error: sdk.ErrorSessionLost, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("the microVM stopped during execution (%s); the session's variables are lost and files written by this execution were not copied back; the next execution gets a fresh VM", why),
		}, nil
	default:
		return res, err
	}
}

// waitExit waits briefly for the agent's report of a kernel exit (it
// follows the kernel's last output).
func (s *session) waitExit(v *vm, gen uint32) *proto.Msg {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if ex := v.agent.exitOf(gen); ex != nil {
			return ex
		}
		if !v.agent.alive() || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pullInto copies guest changes to the host; a failure is reported in the
// result, since the code itself ran.
func (s *session) pullInto(ctx context.Context, res *sdk.ExecResult) {
	if s.v == nil {
		return
	}
	if err := s.ws.pull(ctx, s.v.agent); err != nil {
		s.b.log.Error("workspace sync failed", "session", s.spec.ID, "error", err)
		msg := "workspace files could not all be copied back: " + err.Error()
		if res.Message != "" {
			msg = res.Message + "; " + msg
		}
		res.Message = msg
		if res.Error == sdk.ErrorNone {
			res.Error, res.ExitCode = sdk.ErrorInternal, 1
		}
	}
}

func (s *session) destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.v != nil {
		s.v.destroy()
		s.v = nil
	}
}

type exitCode int

func (c exitCode) ExitCode() int { return int(c) }

func tailSuffix(t string) string {
	if t == "" {
		return ""
	}
	return "; kernel output: " + t
}
