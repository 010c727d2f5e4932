package kernel

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// SessionOptions configure a Session.
type SessionOptions struct {
	// ID names the session in errors and logs.
	ID string
	// Transport starts the session's kernels.
	Transport Transport
	// Setup is applied to every kernel the session starts, the first and
	// each replacement, before any code runs in it.
	Setup Setup
	// Limits are the session's; Timeout and OutputBytes are applied here,
	// the others by the sandbox.
	Limits sdk.Limits
	// Host answers the kernel's host calls (nil: none are served).
	Host sdk.Host
	// Grace is how long interrupted code may take to stop (default 2s).
	Grace time.Duration
	// Sandbox names what a forced stop kills, for messages: "the kernel
	// process", "the WebAssembly instance", "the microVM".
	Sandbox string
	// BeforeExec runs once the kernel is live, before the code is sent
	// (a VM's workspace is pushed into it there). An error fails the exec.
	BeforeExec func(ctx context.Context, p Process) error
	// AfterExec runs after every execution that produced a result, kernel
	// deaths included; p may be dead (files written are pulled back there,
	// leftover processes of timed-out code killed).
	AfterExec func(ctx context.Context, p Process, res *sdk.ExecResult)
	Logger    hclog.Logger
}

// Session runs one sandbox session's code on the kernels its Transport
// starts. It owns what every backend needs alike: one execution at a time,
// the wall-clock timeout, interrupt-then-kill, kernel deaths reported as
// results, the restart that follows, and telling the caller exactly once
// that the session's variables were lost.
type Session struct {
	opts SessionOptions

	mu     sync.Mutex
	proc   Process
	closed bool
	// lost says why the variables of the session are gone when no result
	// has said so yet; the next result carries it.
	lost string
}

// NewSession returns a session with no kernel yet: Start starts one ahead
// of the first execution, or the first Exec does.
func NewSession(opts SessionOptions) *Session {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Sandbox == "" {
		opts.Sandbox = "the kernel process"
	}
	return &Session{opts: opts}
}

// Start makes sure the session has a live kernel: it starts one if there
// is none and replaces one that died since (the next result then says the
// variables were lost).
func (s *Session) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedErr()
	}
	return s.ensure(ctx)
}

// Adopt makes p the session's kernel as it is: the Setup is not applied,
// since a kernel that already served this session (recovered after a plugin
// restart) has it; a kernel restored from another session's snapshot must
// be configured by the caller first.
func (s *Session) Adopt(p Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc, s.lost = p, ""
}

// MarkLost records that the session's variables are gone for a reason the
// Session did not see (the sandbox was replaced while idle); the next
// result says state_lost with it.
func (s *Session) MarkLost(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = reason
}

// Hold runs fn with the session's current kernel (nil when none is live)
// while no execution can start: for snapshots and inspection.
func (s *Session) Hold(fn func(p Process) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedErr()
	}
	p := s.proc
	if p != nil && !alive(p) {
		p = nil
	}
	return fn(p)
}

func (s *Session) closedErr() error {
	return fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, s.opts.ID)
}

func (s *Session) startLocked(ctx context.Context) error {
	p, err := s.opts.Transport.Start(ctx)
	if err != nil {
		return fmt.Errorf("session %s: start kernel: %w", s.opts.ID, err)
	}
	if err := p.Conn().Configure(ctx, s.opts.Setup); err != nil {
		p.Kill(context.WithoutCancel(ctx))
		return fmt.Errorf("session %s: set up kernel: %w%s", s.opts.ID, err, tailSuffix(p))
	}
	s.proc = p
	return nil
}

func tailSuffix(p Process) string {
	select {
	case <-p.Done():
	default:
		return ""
	}
	if t := p.Exit().Tail; t != "" {
		return "; kernel stderr: " + t
	}
	return ""
}

func alive(p Process) bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// drop lets go of the current kernel. An unreported loss is remembered
// for the next result.
func (s *Session) drop(ctx context.Context, why string) {
	if s.proc == nil {
		return
	}
	s.proc.Kill(context.WithoutCancel(ctx))
	s.proc = nil
	if why != "" {
		s.lost = why
	}
}

// ensure gives the session a live kernel, replacing a dead one.
func (s *Session) ensure(ctx context.Context) error {
	if s.proc != nil && !alive(s.proc) {
		ex := s.proc.Exit()
		s.opts.Logger.Warn("kernel died between executions; starting a fresh one", "session", s.opts.ID, "exit", ex.Reason)
		s.drop(ctx, fmt.Sprintf("the kernel exited between executions (%s); the session's variables are lost (workspace files are kept)", ex.Reason))
	}
	if s.proc == nil {
		return s.startLocked(ctx)
	}
	return nil
}
