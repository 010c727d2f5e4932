package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/mcpserve"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// mcpCmd is `mcpruntime mcp`: an MCP server on stdin/stdout.
func mcpCmd(a *app) *cobra.Command {
	var local bool
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP over stdio: execute_python, sessions and skills as MCP tools",
		Long: `Speak the Model Context Protocol on standard input and output, so that an MCP
client (an IDE, a chat app, another agent) can run Python in mcpruntime's
sandboxes. Tools:

  execute_python  run code (optional session_id, backend, timeout_ms); returns
                  stdout, stderr, exit code and error; with a progressToken the
                  output arrives live as progress notifications
  list_sessions   the workspace's sessions (never waits behind running code)
  close_session   end a session
  list_skills     the saved skills sandbox code can import

Sessions are the workspace's: this command speaks for the session daemon
(started on demand, as by "exec --session"), so a session created here is
the one "exec --session ID" and the HTTP API see, and the reverse. With
--local the sessions live in this process instead and end with it.
"mcpruntime serve" offers the same tools over streamable HTTP at /mcp.

ask_llm in sandbox code uses runtime.hcl's llm block; without one it asks
the MCP client through sampling, when the client offers it.

Logs go to standard error only (--log-level, $MCPRUNTIME_LOG); standard
output carries the protocol.

Example client configuration: {"command": "mcpruntime", "args": ["mcp", "--config", "/path/to/runtime.hcl"]}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if local {
				return serveMCPLocal(ctx, a, cmd)
			}
			relay := &mcpserve.Relay{Connect: daemonEndpoint(a, cfg), Logger: a.log().Named("mcp-relay")}
			a.log().Info("serving MCP on stdio for the session daemon", "socket", daemon.SocketPath(cfg))
			if err := relay.Run(ctx, cmd.InOrStdin(), os.Stdout); err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&local, "local", false, "keep the sessions in this process instead of the workspace's session daemon")
	return cmd
}

// daemonEndpoint connects to the workspace's session daemon (starting
// it) and returns its /mcp over the unix socket.
func daemonEndpoint(a *app, cfg *config.Config) func(context.Context) (mcpserve.Endpoint, error) {
	return func(ctx context.Context) (mcpserve.Endpoint, error) {
		_, h, err := daemon.Ensure(ctx, cfg, a.daemonArgs())
		if err != nil {
			return mcpserve.Endpoint{}, err
		}
		if h.ConfigDigest != daemon.Digest(cfg) {
			fmt.Fprintln(os.Stderr, "mcpruntime: warning: the session daemon runs an older runtime.hcl; `mcpruntime daemon stop` applies the new one (live sessions end)")
		}
		sock := daemon.SocketPath(cfg)
		// No kept-alive connections, as in server.NewUnixClient: a request
		// either reaches a serving daemon or fails to dial.
		tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return mcpserve.Endpoint{URL: "http://daemon" + mcpserve.Path, HTTP: &http.Client{Transport: tr}}, nil
	}
}

// serveMCPLocal serves MCP on stdio with sessions in this process.
func serveMCPLocal(ctx context.Context, a *app, cmd *cobra.Command) error {
	m, err := a.manager()
	if err != nil {
		return &exitError{code: exitRuntime, err: err}
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	defer recordReplay(a, m).Wait() // runs before Shutdown, as in exec
	srv, err := newMCPServer(a, m)
	if err != nil {
		return err
	}
	a.log().Info("serving MCP on stdio (sessions in this process)")
	if err := srv.ServeStdio(ctx, cmd.InOrStdin(), os.Stdout); err != nil {
		return &exitError{code: exitRuntime, err: err}
	}
	return nil
}

// newMCPServer builds the MCP server over m with runtime.hcl's mcp_serve
// settings; it takes over m's ask_llm when no model is configured.
func newMCPServer(a *app, m *session.Manager) (*mcpserve.Server, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, err
	}
	opts := mcpserve.Options{
		Manager:          m,
		Version:          version,
		Logger:           a.log(),
		MaxConcurrent:    cfg.MCPServe.MaxConcurrent,
		OutputLimit:      int(cfg.MCPServe.OutputLimit),
		ProgressInterval: cfg.MCPServe.ProgressInterval,
	}
	opts.Tools = promptLister{a: a, hub: a.hub()}
	if cfg.Skills.Dir != "" {
		reg := &skills.Registry{Dir: cfg.Skills.Dir}
		opts.Skills = func() ([]string, error) {
			all, err := reg.List()
			if err != nil {
				return nil, err
			}
			lines := make([]string, 0, len(all))
			for _, s := range all {
				lines = append(lines, s.Listing())
			}
			return lines, nil
		}
	}
	return mcpserve.New(opts), nil
}
