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

// Default bounds of a Hub; see WithInitTimeout, WithCallTimeout and
// WithBackoff. The init timeout is short because a start happens on a
// sandbox's first call, while it waits.
const (
	DefaultInitTimeout = 10 * time.Second
	DefaultCallTimeout = 2 * time.Minute
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = time.Minute
)

// Hub supervises the MCP servers of runtime.hcl and answers tool calls.
// A server starts on first use (or in the background when its tool list is
// not cached yet), is shared by every session of the process, restarts
// after a crash, and one that cannot start is skipped with a warning: only
// calls to it fail.
type Hub struct {
	logger hclog.Logger
	opts   hubOptions
	cache  *listCache
	// base ends pending starts when the Hub closes.
	base   context.Context
	cancel context.CancelFunc

	servers []*supervisor // in runtime.hcl order; fixed after New
	byName  map[string]*supervisor

	mu       sync.Mutex
	closed   bool
	cleanup  []func()
	onChange []func()
}

// Option tunes a Hub.
type Option func(*hubOptions)

type hubOptions struct {
	initTimeout time.Duration
	callTimeout time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	cacheDir    string
}

// WithInitTimeout bounds how long a server may take to start, initialize and
// list its tools, unless its block sets init_timeout (default
// DefaultInitTimeout).
func WithInitTimeout(d time.Duration) Option {
	return func(o *hubOptions) { o.initTimeout = d }
}

// WithCallTimeout bounds every tool call unless the server's block sets
// timeout or tool_timeouts (default DefaultCallTimeout); the caller's
// context may end it sooner.
func WithCallTimeout(d time.Duration) Option {
	return func(o *hubOptions) { o.callTimeout = d }
}

// WithBackoff sets the wait before restarting a server that failed again:
// base after the first failure to start (a first crash restarts at once),
// doubling per consecutive failure up to max.
func WithBackoff(base, max time.Duration) Option {
	return func(o *hubOptions) { o.backoffBase, o.backoffMax = base, max }
}

// WithStateDir keeps each server's tool list in dir/mcp-tools, so that
// stubs and the prompt listing exist without starting the server.
func WithStateDir(dir string) Option {
	return func(o *hubOptions) {
		if dir != "" {
			o.cacheDir = dir + "/mcp-tools"
		}
	}
}

// New returns a Hub for servers without starting any. A nil logger
// discards logs.
func New(servers []config.MCPServer, logger hclog.Logger, opts ...Option) (*Hub, error) {
	o := hubOptions{initTimeout: DefaultInitTimeout, callTimeout: DefaultCallTimeout, backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Hub{logger: logger.Named("mcp"), opts: o, byName: map[string]*supervisor{}}
	if o.cacheDir != "" {
		h.cache = &listCache{dir: o.cacheDir}
	}
	h.base, h.cancel = context.WithCancel(context.Background())
	for _, s := range servers {
		if s.Name == "" {
			return nil, errors.New("mcp_server block without a name")
		}
		if _, dup := h.byName[s.Name]; dup {
			return nil, fmt.Errorf("mcp_server %q is defined twice", s.Name)
		}
		sv := newSupervisor(h, s)
		h.servers = append(h.servers, sv)
		h.byName[s.Name] = sv
	}
	return h, nil
}

// Start returns a Hub whose servers have all been started (concurrently),
// initialized and listed. On any failure the servers already started are
// stopped and the error names the server that failed.
func Start(ctx context.Context, servers []config.MCPServer, logger hclog.Logger, opts ...Option) (*Hub, error) {
	h, err := New(servers, logger, opts...)
	if err != nil {
		return nil, err
	}
	if err := h.StartAll(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// StartAll starts every server that is not running and waits for each to
// be ready or to fail; it returns the failures joined. Servers waiting out
// a backoff are tried again at once.
func (h *Hub) StartAll(ctx context.Context) error {
	if h == nil {
		return nil
	}
	errs := make([]error, len(h.servers))
	var wg sync.WaitGroup
	for i, s := range h.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.mu.Lock()
			s.retryAt = time.Time{}
			s.mu.Unlock()
			_, errs[i] = s.acquire(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Servers returns the names of the configured servers, in runtime.hcl order.
func (h *Hub) Servers() []string {
	if h == nil {
		return nil
	}
	out := make([]string, len(h.servers))
	for i, s := range h.servers {
		out[i] = s.cfg.Name
	}
	return out
}

// Tools returns the tools of server as last listed (by the running server
// or, before it starts, from the listing cache), in the server's order.
// It fails with ErrUnavailable while the list is not known.
func (h *Hub) Tools(server string) ([]Tool, error) {
	s, err := h.server(server)
	if err != nil {
		return nil, err
	}
	st := s.status()
	if !st.ToolsKnown {
		return nil, fmt.Errorf("%w: %q: its tool list is not known yet (%s)", ErrUnavailable, server, st.describe())
	}
	return st.Tools, nil
}

// Status describes every configured server, in runtime.hcl order, for
// doctor, the agent's prompt and the stub generator.
func (h *Hub) Status() []ServerStatus {
	if h == nil {
		return nil
	}
	out := make([]ServerStatus, len(h.servers))
	for i, s := range h.servers {
		out[i] = s.status()
	}
	return out
}

// OnToolsChanged registers f to run (on a goroutine of the Hub) whenever a
// server's tool list becomes known or changes, e.g. when a server started
// in the background answers; Attach rewrites the stubs with it.
func (h *Hub) OnToolsChanged(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onChange = append(h.onChange, f)
}

func (h *Hub) toolsChanged() {
	h.mu.Lock()
	fs := append([]func(){}, h.onChange...)
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return
	}
	for _, f := range fs {
		f()
	}
}

func (h *Hub) server(name string) (*supervisor, error) {
	if h == nil {
		return nil, fmt.Errorf("%w %q: no mcp_server blocks are configured in runtime.hcl", ErrUnknownServer, name)
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("MCP server %q: the tool hub is closed", name)
	}
	s, ok := h.byName[name]
	if !ok {
		names := h.Servers()
		sort.Strings(names)
		known := "none are configured"
		if len(names) > 0 {
			known = "configured: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w %q (%s; add mcp_server %q { command = [...] } to runtime.hcl)", ErrUnknownServer, name, known, name)
	}
	return s, nil
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
	cleanup := h.cleanup
	h.mu.Unlock()
	h.cancel()

	var wg sync.WaitGroup
	for _, s := range h.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.close()
		}()
	}
	wg.Wait()
	for _, f := range cleanup {
		f()
	}
	return nil
}
