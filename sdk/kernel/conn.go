package kernel

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Errors Exec returns when the kernel, not the code, failed.
var (
	// ErrClosed: the channel closed (the kernel process exited or was killed).
	ErrClosed = errors.New("kernel channel closed")
	// ErrUnresponsive: the kernel did not stop after an interrupt; the
	// caller must kill it.
	ErrUnresponsive = errors.New("kernel did not respond to interrupt")
)

// TimeoutExitCode is the exit status reported for code stopped by its
// wall-clock limit (the convention of coreutils' timeout).
const TimeoutExitCode = 124

// Ready is what the kernel reports once it can run code.
type Ready struct {
	Pid      int
	Python   string
	Platform string
}

// Request is one execution on a Conn.
type Request struct {
	Code string
	// Timeout stops the code after this long (0: only ctx bounds it).
	Timeout time.Duration
	// OutputLimit caps stdout+stderr bytes of this execution (0: 1 MiB).
	OutputLimit int64
	// Interrupt asks the kernel to stop the running code (SIGINT for a
	// process). Nil means the transport cannot interrupt: a timeout then
	// returns ErrUnresponsive at once.
	Interrupt func() error
	// Grace is how long to wait after Interrupt before giving up (default 2s).
	Grace time.Duration
}

// DefaultOutputLimit is the output cap when a request sets none.
const DefaultOutputLimit = 1 << 20

// Conn drives one kernel over its framed channel. One execution runs at a
// time; Exec calls are serialised.
type Conn struct {
	w   io.Writer
	wmu sync.Mutex

	frames  chan *Frame
	readErr error // valid once frames is closed

	execMu sync.Mutex
	nextID int64
}

// NewConn starts reading frames from r. Writes go to w.
func NewConn(r io.Reader, w io.Writer) *Conn {
	// Execution ids start at a random point: a kernel adopted by a new Conn
	// (after a plugin restart) may still send the result of an execution
	// the old Conn started, which must not match one of ours.
	c := &Conn{w: w, frames: make(chan *Frame, 64), nextID: firstExecID()}
	go c.readLoop(r)
	return c
}

func (c *Conn) readLoop(r io.Reader) {
	defer close(c.frames)
	for {
		m, err := ReadFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				c.readErr = ErrClosed
			} else {
				c.readErr = fmt.Errorf("%w: %v", ErrClosed, err)
			}
			return
		}
		c.frames <- m
	}
}

func (c *Conn) send(m *Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := WriteFrame(c.w, m); err != nil {
		return fmt.Errorf("%w: write: %v", ErrClosed, err)
	}
	return nil
}

// next returns the next frame, or the reason there is none.
func (c *Conn) next(ctx context.Context) (*Frame, error) {
	select {
	case m, ok := <-c.frames:
		if !ok {
			return nil, c.readErr
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitReady blocks until the kernel announces it is ready.
func (c *Conn) WaitReady(ctx context.Context) (*Ready, error) {
	for {
		m, err := c.next(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for kernel: %w", err)
		}
		if m.Type == "ready" {
			return &Ready{Pid: m.Pid, Python: m.Python, Platform: m.Platform}, nil
		}
	}
}

// firstExecID is a random id below 2^40, which JSON numbers carry exactly.
func firstExecID() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0 // crypto/rand does not fail on Linux; ids then start at 1
	}
	return int64(binary.BigEndian.Uint64(b[:]) >> 24)
}

// Ping checks that the kernel answers between executions.
func (c *Conn) Ping(ctx context.Context) error {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if err := c.send(&Frame{Type: "ping"}); err != nil {
		return err
	}
	for {
		m, err := c.next(ctx)
		if err != nil {
			return fmt.Errorf("ping kernel: %w", err)
		}
		if m.Type == "pong" {
			return nil
		}
	}
}

// Setup adapts a running kernel to its session. Every per-session setting
// travels here, for kernels started with the session and for kernels
// started ahead of demand (warm pools) alike, so no backend runs a set-up
// cell of its own.
type Setup struct {
	// Env is added to os.environ.
	Env map[string]string
	// Cwd becomes the working directory (e.g. sdk.GuestWorkspace).
	Cwd string
	// ImportPaths are put first on sys.path (a session's library root
	// where the sandbox cannot mount it at sdk.GuestLib).
	ImportPaths []string
	// MemoryBytes, when positive, becomes RLIMIT_AS, so allocations beyond
	// the limit raise MemoryError instead of waking an OOM killer.
	MemoryBytes int64
	// Reseed gives the random module fresh entropy: kernels cloned from
	// one warm image or snapshot would otherwise draw the same numbers.
	Reseed bool
	// ForgetImportCaches drops cached directory listings of the import
	// system, after directories were re-pointed under the running kernel.
	ForgetImportCaches bool
	// Preload imports these modules (no names are bound in the session).
	Preload []string
}

// Configure applies setup and waits for the kernel to confirm it.
func (c *Conn) Configure(ctx context.Context, s Setup) error {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	m := &Frame{Type: "configure", Env: s.Env, Cwd: s.Cwd, Forget: s.ForgetImportCaches, Preload: s.Preload,
		ImportPaths: s.ImportPaths, MemoryLimit: s.MemoryBytes, Reseed: s.Reseed}
	if err := c.send(m); err != nil {
		return err
	}
	for {
		m, err := c.next(ctx)
		if err != nil {
			return fmt.Errorf("configure kernel: %w", err)
		}
		if m.Type == "configured" {
			if m.Error != "" {
				return fmt.Errorf("configure kernel: %s", m.Error)
			}
			return nil
		}
	}
}

// Reap has the kernel collect its exited children (processes of code that
// were killed), whose zombies would otherwise count against a pids limit.
func (c *Conn) Reap(ctx context.Context) error {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if err := c.send(&Frame{Type: "reap"}); err != nil {
		return err
	}
	for {
		m, err := c.next(ctx)
		if err != nil {
			return fmt.Errorf("reap: %w", err)
		}
		if m.Type == "reaped" {
			return nil
		}
	}
}

// Shutdown asks the kernel to exit. It does not wait.
func (c *Conn) Shutdown() error { return c.send(&Frame{Type: "shutdown"}) }

// hostReply is a finished host call, ready to be written to the kernel.
type hostReply struct {
	msg    *Frame
	notice *sdk.HostCallNotice
}

// Exec runs code and streams its output through emit. Outcomes of the code
// (exceptions, exit statuses, timeouts the kernel survived) are in the
// result; an error means the kernel itself failed (ErrClosed,
// ErrUnresponsive) or ctx ended.
func (c *Conn) Exec(ctx context.Context, req Request, host sdk.Host, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	start := time.Now()
	c.nextID++
	id := c.nextID
	limit := req.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	grace := req.Grace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	if err := c.send(&Frame{Type: "exec", ID: id, Code: req.Code, OutputLimit: limit}); err != nil {
		return nil, err
	}

	var deadline <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	callCtx, cancelCalls := context.WithCancel(ctx)
	defer cancelCalls()
	replies := make(chan hostReply, 4)
	inflight := 0
	var grace_ <-chan time.Time
	timedOut := false
	var stopErr error
	out := &outputCap{left: limit}

	interrupt := func(reason error) error {
		cancelCalls()
		if req.Interrupt == nil {
			return ErrUnresponsive
		}
		if err := req.Interrupt(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnresponsive, err)
		}
		g := time.NewTimer(grace)
		grace_ = g.C
		stopErr = reason
		return nil
	}
	done := ctx.Done()

	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				return nil, c.readErr
			}
			switch m.Type {
			case "out":
				if m.ID != id {
					continue
				}
				kind := sdk.EventStdout
				if m.Stream == "stderr" {
					kind = sdk.EventStderr
				}
				if data := out.take(m.Data); len(data) > 0 {
					emit(sdk.Event{Kind: kind, Data: data})
				}
			case "display":
				if m.ID != id {
					continue
				}
				if d := out.display(m.Bundle); d != nil {
					emit(sdk.Event{Kind: sdk.EventDisplay, Display: d})
				}
			case "host_call":
				if inflight >= MaxHostCalls {
					// The kernel is sandbox code's: it may ask without end.
					// Refuse beyond the bound instead of starting a host
					// call (an LLM request, a tool) for each.
					r := refuseHostCall(m, fmt.Errorf("more than %d host calls at once", MaxHostCalls))
					emit(sdk.Event{Kind: sdk.EventHostCall, HostCall: r.notice})
					if err := c.send(r.msg); err != nil {
						return nil, err
					}
					continue
				}
				inflight++
				go func(m *Frame) {
					r := serveHostCall(callCtx, host, m)
					select {
					case replies <- r:
					case <-callCtx.Done(): // Exec returned; nobody reads
					}
				}(m)
			case "result":
				if m.ID != id {
					continue
				}
				res := resultOf(m, time.Since(start))
				res.OutputTruncated = res.OutputTruncated || out.truncated
				if timedOut {
					res.Error = sdk.ErrorTimeout
					res.ExitCode = TimeoutExitCode
					res.Message = fmt.Sprintf("execution timed out after %s (interrupted; session state kept)", req.Timeout)
					return res, nil
				}
				if stopErr != nil {
					return res, stopErr
				}
				return res, nil
			}
		case r := <-replies:
			inflight--
			if r.notice != nil {
				emit(sdk.Event{Kind: sdk.EventHostCall, HostCall: r.notice})
			}
			if err := c.send(r.msg); err != nil {
				return nil, err
			}
		case <-deadline:
			deadline = nil
			timedOut = true
			if err := interrupt(nil); err != nil {
				return nil, err
			}
		case <-done:
			done = nil
			if err := interrupt(ctx.Err()); err != nil {
				return nil, err
			}
		case <-grace_:
			return nil, ErrUnresponsive
		}
	}
}

func resultOf(m *Frame, d time.Duration) *sdk.ExecResult {
	res := &sdk.ExecResult{ExitCode: m.ExitCode, Message: m.Message, Duration: d, OutputTruncated: m.Truncated}
	switch m.Kind {
	case "", "none":
		res.Error = sdk.ErrorNone
	case "exit":
		res.Error = sdk.ErrorExit
	case "syntax":
		res.Error = sdk.ErrorSyntax
	case "memory":
		res.Error = sdk.ErrorMemory
	case "interrupted":
		res.Error = sdk.ErrorException
	default:
		res.Error = sdk.ErrorException
	}
	if e := m.Exception; e != nil {
		res.Exception = &sdk.Exception{Type: e.Type, Message: e.Message, Traceback: e.Traceback}
	}
	return res
}

// outputCap enforces the output limit on the host side too, so a kernel that
// ignores its budget cannot flood the caller.
type outputCap struct {
	left      int64
	truncated bool
}

func (o *outputCap) take(s string) []byte {
	if o.left <= 0 {
		if len(s) > 0 {
			o.truncated = true
		}
		return nil
	}
	if int64(len(s)) > o.left {
		s = s[:o.left]
		o.truncated = true
	}
	o.left -= int64(len(s))
	return []byte(s)
}

// display checks a kernel's display frame and charges it to the output
// limit. The kernel caps its own output, but it runs sandbox code, so the
// cap is applied again here: a bundle that does not fit is replaced by a
// note saying what was dropped. A malformed bundle becomes a note too.
func (o *outputCap) display(bundle map[string]string) *sdk.Display {
	data, err := sdk.DecodeBundle(bundle)
	if err != nil || len(data) == 0 {
		return nil
	}
	d := &sdk.Display{Data: data}
	if n := int64(d.Size()); n <= o.left {
		o.left -= n
		return d
	}
	o.truncated = true
	note := []byte(fmt.Sprintf("[display of %d bytes (%s) omitted: over the output limit]", d.Size(), strings.Join(d.MIMETypes(), ", ")))
	if int64(len(note)) > o.left {
		return nil
	}
	o.left -= int64(len(note))
	return &sdk.Display{Data: map[string][]byte{sdk.MIMEText: note}}
}

// MaxHostCalls bounds the host calls one execution has in flight; the
// kernel's further requests are refused until one finishes.
const MaxHostCalls = 16

// refuseHostCall answers a host call with err without making it.
func refuseHostCall(m *Frame, err error) hostReply {
	return hostReply{msg: &Frame{Type: "host_result", Call: m.Call, Error: err.Error(), ErrorCode: sdk.ToolErrorRefused},
		notice: &sdk.HostCallNotice{Method: m.Method, Error: err.Error()}}
}

func serveHostCall(ctx context.Context, host sdk.Host, m *Frame) hostReply {
	start := time.Now()
	reply := &Frame{Type: "host_result", Call: m.Call}
	notice := &sdk.HostCallNotice{Method: m.Method}
	fail := func(code string, err error) hostReply {
		reply.OK = false
		reply.Error = err.Error()
		reply.ErrorCode = code
		notice.Error = reply.Error
		notice.Duration = time.Since(start)
		return hostReply{msg: reply, notice: notice}
	}
	if host == nil {
		return fail(sdk.ToolErrorRefused, errors.New("host calls are not available in this session"))
	}
	switch m.Method {
	case "ask_llm":
		var req sdk.LLMRequest
		if err := json.Unmarshal(m.Args, &req); err != nil {
			return fail(sdk.ToolErrorFailed, fmt.Errorf("ask_llm: bad arguments: %w", err))
		}
		notice.Detail = clip(req.Prompt, 80)
		resp, err := host.AskLLM(ctx, &req)
		if err != nil {
			return fail(errorCode(err), fmt.Errorf("ask_llm: %w", err))
		}
		reply.Result = resp.Text
	case "call_tool":
		var req struct {
			Server    string          `json:"server"`
			Tool      string          `json:"tool"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(m.Args, &req); err != nil {
			return fail(sdk.ToolErrorFailed, fmt.Errorf("call_tool: bad arguments: %w", err))
		}
		notice.Detail = req.Server + "." + req.Tool
		resp, err := host.CallTool(ctx, &sdk.ToolCall{Server: req.Server, Tool: req.Tool, Arguments: req.Arguments})
		if err != nil {
			return fail(errorCode(err), fmt.Errorf("call_tool %s.%s: %w", req.Server, req.Tool, err))
		}
		if resp.IsError {
			code := resp.Code
			if code == "" {
				code = sdk.ToolErrorReported
			}
			msg := string(resp.Result)
			var text string
			if json.Unmarshal(resp.Result, &text) == nil {
				msg = text // a plain message, not JSON for the reader
			}
			if code != sdk.ToolErrorReported {
				// The host's own failure (a timeout, a dead server): its
				// message already names the call.
				return fail(code, errors.New(msg))
			}
			return fail(code, fmt.Errorf("tool %s.%s failed: %s", req.Server, req.Tool, msg))
		}
		reply.Result = json.RawMessage(resp.Result)
		if len(resp.Result) == 0 {
			reply.Result = nil
		}
		reply.Content = resp.Content
	default:
		return fail(sdk.ToolErrorFailed, fmt.Errorf("unknown host method %q", m.Method))
	}
	reply.OK = true
	notice.Duration = time.Since(start)
	return hostReply{msg: reply, notice: notice}
}

// errorCode is the code sandbox code sees for a failed host call.
func errorCode(err error) string {
	if code := sdk.ToolErrorCode(err); code != "" {
		return code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return sdk.ToolErrorTimeout
	}
	return sdk.ToolErrorFailed
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
