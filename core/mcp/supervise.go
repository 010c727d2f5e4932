package mcp

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// State is where a configured server stands.
type State string

// The states of a server.
const (
	// StateIdle: not running; it starts on first use.
	StateIdle State = "idle"
	// StateStarting: being launched, initialized and listed.
	StateStarting State = "starting"
	// StateReady: running and answering.
	StateReady State = "ready"
	// StateUnavailable: its last start failed; calls fail at once with
	// Reason until RetryAt.
	StateUnavailable State = "unavailable"
)

// ServerStatus describes one configured server.
type ServerStatus struct {
	// Name is the server's name in runtime.hcl.
	Name string
	// Transport is "stdio" (a command) or "http" (a url).
	Transport string
	State     State
	// Reason is why the server is unavailable, or why it last stopped
	// (a crash) when it is idle again; empty otherwise.
	Reason string
	// RetryAt is when an unavailable server may be started again.
	RetryAt time.Time
	// ToolsKnown tells whether Tools is the server's tool list (from the
	// running server, or from the listing cache before it starts).
	ToolsKnown bool
	// Cached is true when Tools comes from the listing cache and the
	// server has not answered since this process began.
	Cached bool
	Tools  []Tool
	// Restarts counts the starts after the first.
	Restarts int
	// PID is the server process's id while it runs (stdio servers).
	PID int
}

// Available reports whether calls may be sent (the server runs or will be
// started by the next call).
func (s ServerStatus) Available() bool { return s.State != StateUnavailable }

func (s ServerStatus) describe() string {
	switch s.State {
	case StateUnavailable:
		return "unavailable: " + s.Reason
	case StateIdle:
		if s.Reason != "" {
			return "not running (" + s.Reason + "); it starts on the next call"
		}
		return "not started yet; it starts on first use"
	}
	return string(s.State)
}

// supervisor owns one server: starts it when needed, watches it, restarts
// it after a crash (with backoff when it keeps failing).
type supervisor struct {
	hub    *Hub
	cfg    config.MCPServer
	logger hclog.Logger

	mu       sync.Mutex
	conn     *serverConn
	starting chan struct{} // closed when the start in progress ends
	state    State
	reason   string
	failures int // consecutive failed starts and crashes
	retryAt  time.Time
	starts   int
	tools    []Tool
	raw      []mcp.Tool
	known    bool
	cached   bool
	closed   bool
}

func newSupervisor(h *Hub, cfg config.MCPServer) *supervisor {
	s := &supervisor{hub: h, cfg: cfg, logger: h.logger.Named(cfg.Name), state: StateIdle}
	if raw, ok := h.cache.load(cfg); ok {
		s.raw, s.tools, s.known, s.cached = raw, convertTools(raw), true, true
	}
	return s
}

func (s *supervisor) transport() string {
	if s.cfg.URL != "" {
		return "http"
	}
	return "stdio"
}

func (s *supervisor) status() ServerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStatus{Name: s.cfg.Name, Transport: s.transport(), State: s.state, Reason: s.reason,
		ToolsKnown: s.known, Cached: s.cached, Tools: append([]Tool(nil), s.tools...), Restarts: max(s.starts-1, 0)}
	if s.state == StateUnavailable {
		st.RetryAt = s.retryAt
	}
	if s.conn != nil {
		st.PID = s.conn.pid()
	}
	return st
}

// acquire returns the running server, starting it if needed and waiting
// for a start in progress (as long as ctx allows). An unavailable server
// fails at once with ErrUnavailable until its retry time.
func (s *supervisor) acquire(ctx context.Context) (*serverConn, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %q: the tool hub is closed", ErrUnavailable, s.cfg.Name)
		case s.conn != nil && s.conn.isGone():
			s.forgetLocked(s.conn)
			s.mu.Unlock()
			continue
		case s.conn != nil:
			c := s.conn
			s.mu.Unlock()
			return c, nil
		case s.starting == nil && s.state == StateUnavailable && time.Now().Before(s.retryAt):
			err := fmt.Errorf("%w: %q: %s (next start attempt in %s)", ErrUnavailable, s.cfg.Name, s.reason, time.Until(s.retryAt).Round(100*time.Millisecond))
			s.mu.Unlock()
			return nil, err
		case s.starting == nil:
			s.beginStart()
		}
		wait := s.starting
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("MCP server %q is starting: %w", s.cfg.Name, ctx.Err())
		}
		s.mu.Lock()
		if s.conn == nil && s.state == StateUnavailable {
			err := fmt.Errorf("%w: %q: %s", ErrUnavailable, s.cfg.Name, s.reason)
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
	}
}

// kick starts the server in the background unless it runs, is starting or
// waits out a backoff.
func (s *supervisor) kick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.conn != nil || s.starting != nil || (s.state == StateUnavailable && time.Now().Before(s.retryAt)) {
		return
	}
	s.beginStart()
}

// beginStart launches a start on its own goroutine; s.mu is held. The start
// is not bound to any caller: callers only wait for it.
func (s *supervisor) beginStart() {
	done := make(chan struct{})
	s.starting = done
	s.state = StateStarting
	s.starts++
	timeout := s.cfg.InitTimeout
	if timeout <= 0 {
		timeout = s.hub.opts.initTimeout
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.hub.base, timeout)
		defer cancel()
		t0 := time.Now()
		c, err := startServer(ctx, s.cfg, s.logger)
		s.started(c, err, time.Since(t0))
		close(done)
	}()
}

// started records the outcome of a start.
func (s *supervisor) started(c *serverConn, err error, took time.Duration) {
	s.mu.Lock()
	s.starting = nil
	if s.closed {
		s.mu.Unlock()
		if c != nil {
			c.stop()
		}
		return
	}
	if err != nil {
		s.failures++
		s.state, s.reason = StateUnavailable, err.Error()
		s.retryAt = time.Now().Add(s.backoff(s.failures))
		wait := time.Until(s.retryAt).Round(100 * time.Millisecond)
		s.mu.Unlock()
		s.logger.Warn("MCP server unavailable; code that does not call it runs normally, its calls fail until a retry", "retry_in", wait, "reason", err.Error())
		return
	}
	s.conn, s.state = c, StateReady
	changed := !s.known || !reflect.DeepEqual(s.raw, c.raw)
	s.raw, s.tools, s.known, s.cached = c.raw, c.tools, true, false
	s.mu.Unlock()
	s.logger.Info("MCP server ready", "tools", len(c.tools), "took", took.Round(time.Millisecond))
	if changed {
		if err := s.hub.cache.save(s.cfg, c.raw); err != nil {
			s.logger.Warn("cannot cache the tool list", "error", err)
		}
		s.hub.toolsChanged()
	}
	go s.watch(c)
}

// watch notices the server's end: a crash (or a broken connection) makes
// the next call restart it, at once after a first failure and after a
// growing backoff when it keeps failing.
func (s *supervisor) watch(c *serverConn) {
	<-c.gone()
	s.forget(c)
}

// forget records the end of c, once, whoever notices it first (the watch,
// a call that lost it, or the next acquire).
func (s *supervisor) forget(c *serverConn) {
	s.mu.Lock()
	s.forgetLocked(c)
	s.mu.Unlock()
}

func (s *supervisor) forgetLocked(c *serverConn) {
	if s.conn != c || s.closed {
		return
	}
	s.conn = nil
	s.failures++
	s.reason = c.exitReason()
	wait := s.backoff(s.failures - 1)
	if wait > 0 {
		s.state, s.retryAt = StateUnavailable, time.Now().Add(wait)
	} else {
		s.state = StateIdle
	}
	go c.stop()
	s.logger.Warn("MCP server stopped; the next call restarts it", "restart_after", wait, "reason", s.reason)
}

// dropped forgets a connection that broke during a call (HTTP servers,
// whose end no process exit tells).
func (s *supervisor) dropped(c *serverConn, err error) {
	c.markGone(err)
	s.forget(c)
}

// succeeded notes a call that reached the server and came back.
func (s *supervisor) succeeded() {
	s.mu.Lock()
	s.failures = 0
	s.mu.Unlock()
}

// backoff is the wait before the next start after n consecutive failures.
func (s *supervisor) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := s.hub.opts.backoffBase
	for i := 1; i < n && d < s.hub.opts.backoffMax; i++ {
		d *= 2
	}
	return min(d, s.hub.opts.backoffMax)
}

func (s *supervisor) close() {
	s.mu.Lock()
	s.closed = true
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		c.stop()
	}
}

// timeout is the call timeout of tool and what set it.
func (s *supervisor) timeout(tool string) (time.Duration, string) {
	if d, ok := s.cfg.ToolTimeouts[tool]; ok && d > 0 {
		return d, "tool_timeouts"
	}
	if s.cfg.Timeout > 0 {
		return s.cfg.Timeout, "timeout"
	}
	return s.hub.opts.callTimeout, "the default tool timeout"
}

// convertTools presents a listing to Python, skipping duplicate names.
func convertTools(raw []mcp.Tool) []Tool {
	seen := map[string]bool{}
	var out []Tool
	for _, t := range raw {
		if seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		out = append(out, toolFromMCP(t))
	}
	return out
}
