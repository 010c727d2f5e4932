package mcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// Default bounds of a Hub; see WithInitTimeout and WithCallTimeout.
const (
	DefaultInitTimeout = 30 * time.Second
	DefaultCallTimeout = 2 * time.Minute
)

// ErrUnknownServer is returned for a call to a server runtime.hcl does not name.
var ErrUnknownServer = errors.New("unknown MCP server")

// ErrUnknownTool is returned for a call to a tool the server does not list.
var ErrUnknownTool = errors.New("unknown MCP tool")

// ErrToolTimeout is returned when a tool call outlives the call timeout.
var ErrToolTimeout = errors.New("MCP tool call timed out")

// Hub is a set of running MCP servers and the tools they offer.
type Hub struct {
	logger      hclog.Logger
	callTimeout time.Duration

	mu      sync.Mutex
	servers []*serverConn // in runtime.hcl order
	byName  map[string]*serverConn
	closed  bool
	cleanup []func()
}

// Option tunes a Hub.
type Option func(*hubOptions)

type hubOptions struct {
	initTimeout time.Duration
	callTimeout time.Duration
}

// WithInitTimeout bounds how long a server may take to start, initialize and
// list its tools (default DefaultInitTimeout).
func WithInitTimeout(d time.Duration) Option {
	return func(o *hubOptions) { o.initTimeout = d }
}

// WithCallTimeout bounds every tool call (default DefaultCallTimeout); the
// caller's context may end it sooner.
func WithCallTimeout(d time.Duration) Option {
	return func(o *hubOptions) { o.callTimeout = d }
}

// Start launches every server (concurrently), initializes it and lists its
// tools. On any failure the servers already started are stopped and the
// error names the server that failed. A nil or empty servers gives an empty
// Hub.
func Start(ctx context.Context, servers []config.MCPServer, logger hclog.Logger, opts ...Option) (*Hub, error) {
	o := hubOptions{initTimeout: DefaultInitTimeout, callTimeout: DefaultCallTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Hub{logger: logger.Named("mcp"), callTimeout: o.callTimeout, byName: map[string]*serverConn{}}
	seen := map[string]bool{}
	for _, s := range servers {
		if s.Name == "" {
			return nil, errors.New("mcp_server block without a name")
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("mcp_server %q is defined twice", s.Name)
		}
		seen[s.Name] = true
	}

	conns := make([]*serverConn, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, o.initTimeout)
			defer cancel()
			conns[i], errs[i] = startServer(ictx, s, h.logger.Named(s.Name))
		}()
	}
	wg.Wait()
	for i, c := range conns {
		if c != nil {
			h.servers = append(h.servers, c)
			h.byName[servers[i].Name] = c
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Servers returns the names of the running servers, in runtime.hcl order.
func (h *Hub) Servers() []string {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.servers))
	for i, s := range h.servers {
		out[i] = s.name
	}
	return out
}

// Tools returns the tools of server, in the order the server listed them.
func (h *Hub) Tools(server string) ([]Tool, error) {
	c, err := h.server(server)
	if err != nil {
		return nil, err
	}
	return append([]Tool(nil), c.tools...), nil
}

func (h *Hub) server(name string) (*serverConn, error) {
	if h == nil {
		return nil, fmt.Errorf("%w %q: no mcp_server blocks are configured in runtime.hcl", ErrUnknownServer, name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("MCP server %q: the tool hub is closed", name)
	}
	c, ok := h.byName[name]
	if !ok {
		names := make([]string, 0, len(h.byName))
		for n := range h.byName {
			names = append(names, n)
		}
		sort.Strings(names)
		known := "none are configured"
		if len(names) > 0 {
			known = "configured: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w %q (%s; add mcp_server %q { command = [...] } to runtime.hcl)", ErrUnknownServer, name, known, name)
	}
	return c, nil
}

// OnClose registers f to run when the Hub closes (after its servers stop).
func (h *Hub) OnClose(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanup = append(h.cleanup, f)
}

// Close stops every server process (and anything it started in its process
// group) and runs the OnClose functions. It is safe to call more than once
// and on a nil Hub.
func (h *Hub) Close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	servers, cleanup := h.servers, h.cleanup
	h.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.stop()
		}()
	}
	wg.Wait()
	for _, f := range cleanup {
		f()
	}
	return nil
}
