package mcp

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// ServerOptions configure the MCP server that NewServer builds.
type ServerOptions struct {
	// Manager runs the sessions; required.
	Manager *session.Manager
	// Skills lists saved skills for list_skills; nil means none.
	Skills *skills.Registry
	// Tools, when set, has its Listing put into the server's instructions
	// (the MCP tools sandbox code can call).
	Tools *Hub
	// Version is reported to clients.
	Version string
	// Logger receives the server's logs; nil discards them.
	Logger hclog.Logger
}

// NewServer returns an MCP server whose tools run Python in the sessions of
// opts.Manager: execute_python, list_sessions, close_session, list_skills.
func NewServer(opts ServerOptions) *server.MCPServer {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Version == "" {
		opts.Version = clientVersion
	}
	t := &serverTools{opts: opts, logger: opts.Logger.Named("mcp-server")}
	s := server.NewMCPServer("mcpruntime", opts.Version,
		server.WithToolCapabilities(false),
		server.WithRecovery(),
		server.WithInstructions(t.instructions()))
	t.register(s)
	return s
}

// Serve speaks MCP over in and out (a process's stdin and stdout) until in
// ends or ctx is done. Logs go to logger, never to out.
func Serve(ctx context.Context, s *server.MCPServer, in io.Reader, out io.Writer, logger hclog.Logger) error {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	std := server.NewStdioServer(s)
	std.SetErrorLogger(logger.Named("mcp-server").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}))
	if err := std.Listen(ctx, in, out); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve MCP: %w", err)
	}
	return nil
}

// serverTools implements the server's tools.
type serverTools struct {
	opts   ServerOptions
	logger hclog.Logger
}

func (t *serverTools) instructions() string {
	var b strings.Builder
	b.WriteString("mcpruntime runs Python 3 in sandboxes. Use execute_python to run code; pass a session_id to keep " +
		"variables, imports and definitions between calls (the session is created on first use; close it with " +
		"close_session). Without session_id each call runs in a fresh session that is discarded afterwards. " +
		"Files written to the working directory persist in the workspace. Sandbox code can call ask_llm(prompt) " +
		"and import saved skills (`from skills.<name> import run`; see list_skills).")
	if l := t.opts.Tools.Listing(); l != "" {
		b.WriteString("\n\n" + l)
	}
	return b.String()
}

func (t *serverTools) register(s *server.MCPServer) {
	s.AddTool(mcp.NewTool("execute_python",
		mcp.WithDescription("Run Python code in a sandbox and return its stdout, stderr, exit code and error. "+
			"Like a notebook cell, the value of a final expression is printed."),
		mcp.WithString("code", mcp.Required(), mcp.Description("the Python source to run")),
		mcp.WithString("session_id", mcp.Description("run in this persistent session (created on first use); omit for a one-off session")),
		mcp.WithString("backend", mcp.Description("sandbox backend for a new session (default: runtime.hcl's runtime.backend)")),
		mcp.WithInteger("timeout_ms", mcp.Description("wall-clock limit in milliseconds; at most, and by default, the backend's limits.timeout"), mcp.Min(1)),
	), t.executePython)
	s.AddTool(mcp.NewTool("list_sessions",
		mcp.WithDescription("List the live sandbox sessions: id, backend, executions run, creation time."),
		mcp.WithReadOnlyHintAnnotation(true),
	), t.listSessions)
	s.AddTool(mcp.NewTool("close_session",
		mcp.WithDescription("Close a persistent session; its variables are discarded (workspace files stay)."),
		mcp.WithString("session_id", mcp.Required(), mcp.Description("the session to close")),
		mcp.WithDestructiveHintAnnotation(true),
	), t.closeSession)
	s.AddTool(mcp.NewTool("list_skills",
		mcp.WithDescription("List the saved skills that sandbox code can import (from skills.<name> import run), with signatures and descriptions."),
		mcp.WithReadOnlyHintAnnotation(true),
	), t.listSkills)
}
