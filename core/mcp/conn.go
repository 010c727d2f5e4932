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

// serverConn is one running MCP server.
type serverConn struct {
	name   string
	client *client.Client
	stderr *tailWriter
	tools  []Tool
	byName map[string]*Tool

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startServer launches s, initializes it and lists its tools.
func startServer(ctx context.Context, s config.MCPServer, logger hclog.Logger) (*serverConn, error) {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return nil, fmt.Errorf("mcp_server %q: command is empty", s.Name)
	}
	path, err := exec.LookPath(s.Command[0])
	if err != nil {
		return nil, fmt.Errorf("mcp_server %q: command %q not found: %w", s.Name, s.Command[0], err)
	}
	// The server is a third party: it gets the allow-listed environment
	// and what its block names, never the host's secrets.
	env := host.AllowedEnv(s.PassEnv, s.Env)
	c := &serverConn{name: s.Name, stderr: newTailWriter(8<<10, logger), byName: map[string]*Tool{}}
	tr := transport.NewStdioWithOptions(path, env, s.Command[1:],
		transport.WithCommandFunc(c.command),
		transport.WithCommandStderrWriter(c.stderr))
	// The process must outlive ctx (which only bounds start-up), so the
	// transport gets a context of its own.
	if err := tr.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("mcp_server %q: start %s: %w", s.Name, path, err)
	}
	c.client = client.NewClient(tr)
	if err := c.client.Start(context.WithoutCancel(ctx)); err != nil {
		c.stop()
		return nil, fmt.Errorf("mcp_server %q: %w", s.Name, err)
	}
	logger.Debug("started", "command", s.Command, "pid", c.pid())

	if err := c.initialize(ctx); err != nil {
		status := c.stop()
		return nil, c.startError("initialize", err, status, ctx)
	}
	if err := c.listTools(ctx); err != nil {
		status := c.stop()
		return nil, c.startError("list tools", err, status, ctx)
	}
	logger.Info("MCP server ready", "tools", len(c.tools))
	return c, nil
}

// startError explains a failed start-up, with the server's last words.
func (c *serverConn) startError(stage string, err error, status error, ctx context.Context) error {
	msg := fmt.Sprintf("mcp_server %q: %s failed: %v", c.name, stage, err)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg = fmt.Sprintf("mcp_server %q: %s timed out (the server did not answer)", c.name, stage)
	}
	var ee *exec.ExitError
	if errors.As(status, &ee) {
		msg += fmt.Sprintf("; the server exited (%v)", ee)
	}
	if tail := strings.TrimSpace(c.stderr.String()); tail != "" {
		msg += "; its stderr:\n" + tail
	}
	return errors.New(msg)
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
	for _, t := range res.Tools {
		tool := toolFromMCP(t)
		if _, dup := c.byName[tool.Name]; dup {
			continue
		}
		c.tools = append(c.tools, tool)
	}
	for i := range c.tools {
		c.byName[c.tools[i].Name] = &c.tools[i]
	}
	return nil
}

// command builds the server's process: its own process group, so that stop
// reaches whatever the server starts, and exactly the environment
// startServer computed (the transport passes it as env).
func (c *serverConn) command(_ context.Context, command string, env []string, args []string) (*exec.Cmd, error) {
	cmd := exec.Command(command, args...)
	cmd.Env = env
	setProcessGroup(cmd)
	c.mu.Lock()
	c.cmd = cmd
	c.mu.Unlock()
	return cmd, nil
}

func (c *serverConn) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// stop closes the connection (stdin EOF, then SIGTERM, then SIGKILL, as the
// transport does) and kills what is left of the process group. It returns
// how the server exited.
func (c *serverConn) stop() error {
	var status error
	if c.client != nil {
		status = c.client.Close()
	}
	if pid := c.pid(); pid > 0 {
		killProcessGroup(pid)
	}
	return status
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
