package kernel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Exec runs code in the session. A kernel that died since the last
// execution is replaced first. Outcomes of the code, kernel deaths and
// code that would not stop are results; an error means the code could not
// be run, or ctx ended (the code was interrupted, or its kernel killed and
// the next result says so).
func (s *Session) Exec(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.closedErr()
	}
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	p := s.proc
	if s.opts.BeforeExec != nil {
		if err := s.opts.BeforeExec(ctx, p); err != nil {
			return nil, fmt.Errorf("session %s: %w", s.opts.ID, err)
		}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.opts.Limits.Timeout
	}
	start := time.Now()
	res, err := p.Conn().Exec(ctx, Request{
		Code: req.Code, Timeout: timeout, OutputLimit: s.opts.Limits.OutputBytes,
		Interrupt: p.Interrupt, Grace: s.opts.Grace,
	}, s.opts.Host, emit)
	if err != nil && ctx.Err() != nil {
		return s.cancelled(ctx, p, res, err)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrUnresponsive):
		s.opts.Logger.Warn("code did not stop when interrupted; killing the kernel", "session", s.opts.ID, "error", err)
		s.drop(ctx, "")
		res = &sdk.ExecResult{
			ExitCode: TimeoutExitCode, Error: sdk.ErrorTimeout, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("execution timed out after %s and did not stop when interrupted; %s was killed and the session's variables are lost (workspace files are kept); the next execution starts a fresh kernel", timeout, s.opts.Sandbox),
		}
	case errors.Is(err, ErrClosed):
		res = s.died(ctx, p, time.Since(start))
	default:
		s.drop(ctx, fmt.Sprintf("the kernel was stopped after a failure of its channel (%v); the session's variables are lost", err))
		return nil, fmt.Errorf("session %s: %w", s.opts.ID, err)
	}
	s.report(res)
	if s.opts.AfterExec != nil {
		s.opts.AfterExec(ctx, p, res)
	}
	return res, nil
}

// report adds a loss no result has told yet.
func (s *Session) report(res *sdk.ExecResult) {
	if s.lost == "" {
		return
	}
	if !res.StateLost {
		res.StateLost = true
		note := "note: " + s.lost
		if res.Message != "" {
			note = res.Message + "; " + note
		}
		res.Message = note
	}
	s.lost = ""
}

// died builds the result of a kernel whose channel closed mid-execution.
func (s *Session) died(ctx context.Context, p Process, d time.Duration) *sdk.ExecResult {
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		// The channel is gone but the process lingers: stop it.
	}
	s.drop(ctx, "")
	ex := p.Exit()
	if ex.SandboxLost {
		return &sdk.ExecResult{
			ExitCode: 1, Error: sdk.ErrorSessionLost, Duration: d, StateLost: true,
			Message: fmt.Sprintf("%s stopped during execution (%s); the session's variables are lost; the next execution starts a fresh one", s.opts.Sandbox, ex.Reason),
		}
	}
	return KernelDied(ex, d)
}

// cancelled handles an execution whose context ended. A kernel that
// stopped the code keeps its state; one that did not is killed, and the
// loss is told by the next result (this call returns no result).
func (s *Session) cancelled(ctx context.Context, p Process, res *sdk.ExecResult, err error) (*sdk.ExecResult, error) {
	if res == nil || !errors.Is(err, ctx.Err()) {
		s.drop(ctx, "the previous execution was cancelled and its code did not stop, so the kernel was killed; the session's variables are lost (workspace files are kept)")
	} else if s.opts.AfterExec != nil {
		s.opts.AfterExec(ctx, p, res)
	}
	return nil, fmt.Errorf("session %s: execution cancelled: %w", s.opts.ID, ctx.Err())
}

// KernelDied is the result of an execution whose kernel exited.
func KernelDied(ex Exit, d time.Duration) *sdk.ExecResult {
	why := ex.Reason
	if ex.Tail != "" {
		why += "; kernel stderr: " + ex.Tail
	}
	return &sdk.ExecResult{
		ExitCode: ex.ExitCode(), Error: sdk.ErrorKernelDied, Duration: d, StateLost: true,
		Message: fmt.Sprintf("the Python kernel died during execution (%s); the session's variables are lost, the next execution starts a fresh kernel", why),
	}
}

// Close stops the session's kernel (a polite shutdown, then a kill) and
// refuses further executions. It waits for a running execution to end;
// cancel that first to close at once.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	p := s.proc
	s.proc = nil
	if p == nil {
		return nil
	}
	if alive(p) {
		if err := p.Conn().Shutdown(); err == nil {
			select {
			case <-p.Done():
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
	p.Kill(context.WithoutCancel(ctx))
	return nil
}
