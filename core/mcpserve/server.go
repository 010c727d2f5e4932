package mcpserve

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpruntime/mcpruntime/core/session"
)

// Defaults of Options.
const (
	// DefaultMaxConcurrent is how many execute_python calls run at once;
	// more wait (management calls never do).
	DefaultMaxConcurrent = 16
	// DefaultOutputLimit caps each of stdout and stderr returned to the
	// client (head and tail kept).
	DefaultOutputLimit = 64 << 10
	// DefaultProgressInterval is the shortest gap between two progress
	// notifications of one call (at most 10 a second).
	DefaultProgressInterval = 100 * time.Millisecond
	// DefaultHeartbeat is how often a call whose cell prints nothing still
	// sends a progress notification, so that a client resetting its
	// timeout on progress keeps waiting.
	DefaultHeartbeat = 5 * time.Second
)

// Lister describes the MCP tools sandbox code can call (an *mcp.Hub).
type Lister interface{ Listing() string }

// Options configure the MCP server that New builds.
type Options struct {
	// Manager runs the sessions; required.
	Manager *session.Manager
	// Skills lists the saved skills for list_skills, one line each (name,
	// signature, description); nil means no skills directory.
	Skills func() ([]string, error)
	// Tools, when set, has its Listing put into the server's instructions
	// (the MCP tools sandbox code can call: an *mcp.Hub).
	Tools Lister
	// Version is reported to clients.
	Version string
	// Logger receives the server's logs; nil discards them.
	Logger hclog.Logger
	// MaxConcurrent bounds execute_python calls running at once (zero:
	// DefaultMaxConcurrent).
	MaxConcurrent int
	// OutputLimit caps each output stream returned to the client (zero:
	// DefaultOutputLimit).
	OutputLimit int
	// ProgressInterval and Heartbeat pace progress notifications (zero:
	// the defaults).
	ProgressInterval, Heartbeat time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.OutputLimit <= 0 {
		o.OutputLimit = DefaultOutputLimit
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	return o
}

// Server is the MCP server over one session manager.
type Server struct {
	opts   Options
	logger hclog.Logger
	mcp    *server.MCPServer
	// cells bounds concurrent execute_python calls.
	cells chan struct{}
	// sampling answers ask_llm through MCP clients when no model is
	// configured.
	sampling *samplingLLM
}

// New returns an MCP server whose tools run Python in the sessions of
// opts.Manager. When the manager's bridge has no language model, ask_llm
// is answered by the sampling of the MCP client whose call runs the code
// (see samplingLLM): New sets the bridge's LLM, so call it before serving.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{opts: opts, logger: opts.Logger.Named("mcp-server"), cells: make(chan struct{}, opts.MaxConcurrent)}
	s.mcp = server.NewMCPServer("mcpruntime", opts.Version,
		server.WithToolCapabilities(false),
		server.WithRecovery(),
		server.WithInstructions(s.instructions()))
	s.mcp.EnableSampling()
	if br := opts.Manager.Bridge(); br != nil {
		// A bridge LLM that takes a fallback (the runtime's, which adds
		// context and recursion) keeps its place and asks the client only
		// when no model is configured.
		if f, ok := br.LLM.(fallbackTaker); ok {
			s.sampling = newSamplingLLM(s.mcp, nil)
			f.SetFallback(s.sampling)
		} else {
			s.sampling = newSamplingLLM(s.mcp, br.LLM)
			br.LLM = s.sampling
		}
	}
	s.register()
	return s
}

// MCPServer is the underlying protocol server.
func (s *Server) MCPServer() *server.MCPServer { return s.mcp }

// stdioWorkers is the stdio transport's worker pool (its maximum): every
// tools/call takes a worker, so with a small pool a list_sessions would
// wait behind running cells. Cells are bounded by Options.MaxConcurrent
// inside execute_python instead.
const stdioWorkers = 100

// ServeStdio speaks MCP over in and out (a process's stdin and stdout)
// until in ends or ctx is done. Logs go to the logger, never to out.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	std := server.NewStdioServer(s.mcp)
	std.SetErrorLogger(s.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}))
	server.WithWorkerPoolSize(stdioWorkers)(std)
	if err := std.Listen(ctx, in, out); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve MCP on stdio: %w", err)
	}
	return nil
}

// Path is where HTTP servers mount Handler.
const Path = "/mcp"

// Handler serves MCP over streamable HTTP at Path. It does no
// authentication and no Host or Origin checks of its own: the caller
// mounts it behind the same guard and token as the rest of its API
// (mcp-go's loopback-only Host check is off, as it would refuse the
// names server.hosts allows).
func (s *Server) Handler() http.Handler {
	return server.NewStreamableHTTPServer(s.mcp,
		server.WithEndpointPath(Path),
		server.WithDisableLocalhostProtection(true),
		server.WithHeartbeatInterval(30*time.Second),
		server.WithStreamableHTTPLogger(newSlog(s.logger)))
}

func (s *Server) instructions() string {
	var b strings.Builder
	b.WriteString("mcpruntime runs Python 3 in sandboxes. Use execute_python to run code; pass a session_id to keep " +
		"variables, imports and definitions between calls (the session is created on first use; close it with " +
		"close_session). Without session_id each call runs in a fresh session that is discarded afterwards. " +
		"Files written to the working directory persist in the workspace. Sandbox code can call ask_llm(prompt) " +
		"and import saved skills (`from skills.<name> import run`; see list_skills). Send a progressToken to " +
		"receive the cell's output live as progress notifications.")
	if s.opts.Tools == nil {
		return b.String()
	}
	if l := s.opts.Tools.Listing(); l != "" {
		b.WriteString("\n\n" + l)
	}
	return b.String()
}
