package mcp

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// clientVersion is what mcpruntime tells MCP servers it is.
const clientVersion = "0.1.0"

// serverConn is one connection to a server: a process spoken to over
// stdio, or a streamable-HTTP session.
type serverConn struct {
	name   string
	client *client.Client
	proc   *process // nil for HTTP
	stderr *tailWriter
	raw    []mcp.Tool
	tools  []Tool
	byName map[string]bool

	goneOnce sync.Once
	goneCh   chan struct{}
	goneErr  error
}

// startServer connects to s (launching its command, or opening an HTTP
// session), initializes it and lists its tools, within ctx.
func startServer(ctx context.Context, s config.MCPServer, logger hclog.Logger) (*serverConn, error) {
	c := &serverConn{name: s.Name, stderr: newTailWriter(8<<10, logger), byName: map[string]bool{}, goneCh: make(chan struct{})}
	var tr transport.Interface
	if s.URL != "" {
		h, err := newHTTPTransport(s)
		if err != nil {
			return nil, fmt.Errorf("mcp_server %q: %w", s.Name, err)
		}
		tr = h
	} else {
		if len(s.Command) == 0 || s.Command[0] == "" {
			return nil, fmt.Errorf("mcp_server %q: command is empty", s.Name)
		}
		path, err := exec.LookPath(s.Command[0])
		if err != nil {
			return nil, fmt.Errorf("mcp_server %q: command %q not found: %w", s.Name, s.Command[0], err)
		}
		// The server is a third party: it gets the allow-listed
		// environment and what its block names, never the host's secrets.
		env := host.AllowedEnv(s.PassEnv, s.Env)
		p, err := startProcess(path, s.Command[1:], env, c.stderr)
		if err != nil {
			return nil, fmt.Errorf("mcp_server %q: start %s: %w", s.Name, path, err)
		}
		c.proc = p
		go func() {
			<-p.done
			c.markGone(p.err)
		}()
		tr = transport.NewIO(p.stdout, p.stdin, nil)
		logger.Debug("started", "command", s.Command, "pid", p.pid())
	}
	c.client = client.NewClient(tr)
	// The connection must outlive ctx (which only bounds start-up).
	if err := c.client.Start(context.WithoutCancel(ctx)); err != nil {
		c.stop()
		return nil, fmt.Errorf("mcp_server %q: %w", s.Name, err)
	}
	// A server that dies during start-up ends the wait at once.
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.goneCh:
			cancel(errExited)
		case <-ictx.Done():
		}
	}()
	if err := c.initialize(ictx); err != nil {
		return nil, c.startError("initialize", err, ctx)
	}
	if err := c.listTools(ictx); err != nil {
		return nil, c.startError("list tools", err, ctx)
	}
	return c, nil
}

var errExited = errors.New("the server exited")

// startError stops the half-started server and explains the failure, with
// the server's last words.
func (c *serverConn) startError(stage string, err error, ctx context.Context) error {
	c.stop()
	msg := fmt.Sprintf("%s failed: %v", stage, err)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg = fmt.Sprintf("%s timed out (the server did not answer; raise init_timeout in its mcp_server block if it is slow to start)", stage)
	case c.proc != nil && c.isGone():
		msg = fmt.Sprintf("%s failed: the server exited", stage)
	}
	var ee *exec.ExitError
	if c.proc != nil && errors.As(c.proc.err, &ee) {
		msg += fmt.Sprintf(" (%v)", ee)
	}
	if tail := strings.TrimSpace(c.stderr.String()); tail != "" {
		msg += "; its stderr:\n" + lastLines(tail, 10)
	}
	return fmt.Errorf("mcp_server %q: %s", c.name, msg)
}

func (c *serverConn) initialize(ctx context.Context) error {
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpruntime", Version: clientVersion}
	_, err := c.client.Initialize(ctx, req)
	return err
}

func (c *serverConn) listTools(ctx context.Context) error {
	res, err := c.client.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return err
	}
	c.raw = res.Tools
	c.tools = convertTools(res.Tools)
	for _, t := range c.tools {
		c.byName[t.Name] = true
	}
	return nil
}

func (c *serverConn) pid() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

// gone is closed when the server has exited or its connection broke.
func (c *serverConn) gone() <-chan struct{} { return c.goneCh }

func (c *serverConn) isGone() bool {
	select {
	case <-c.goneCh:
		return true
	default:
		return false
	}
}

func (c *serverConn) markGone(err error) {
	c.goneOnce.Do(func() {
		c.goneErr = err
		close(c.goneCh)
	})
}

// exitReason says how the server ended, with its last stderr lines.
func (c *serverConn) exitReason() string {
	msg := "the connection broke"
	if c.proc != nil {
		msg = "the server exited"
		if c.goneErr != nil {
			msg += " (" + c.goneErr.Error() + ")"
		}
	} else if c.goneErr != nil {
		msg += ": " + c.goneErr.Error()
	}
	if tail := lastLines(c.stderr.String(), 5); tail != "" {
		msg += "; its last stderr lines:\n" + tail
	}
	return msg
}

// stop closes the connection and ends the server process and anything it
// started (stdin EOF, then SIGTERM, then SIGKILL to its process group).
func (c *serverConn) stop() {
	if c.client != nil {
		_ = c.client.Close()
	}
	if c.proc != nil {
		c.proc.stop()
	}
	c.markGone(errors.New("stopped"))
}

// tailWriter keeps the last bytes a server wrote to stderr (for error
// messages) and logs each line at debug level.
type tailWriter struct {
	max    int
	logger hclog.Logger

	mu   sync.Mutex
	buf  []byte
	line []byte
}

func newTailWriter(max int, logger hclog.Logger) *tailWriter {
	return &tailWriter{max: max, logger: logger}
}

// Write implements io.Writer.
func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append([]byte(nil), w.buf[len(w.buf)-w.max:]...)
	}
	w.line = append(w.line, p...)
	for {
		i := strings.IndexByte(string(w.line), '\n')
		if i < 0 {
			break
		}
		w.logger.Debug("stderr", "line", string(w.line[:i]))
		w.line = w.line[i+1:]
	}
	if len(w.line) > w.max {
		w.line = w.line[:0]
	}
	return len(p), nil
}

// String returns the kept tail.
func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
