package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/mcp"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// mcpCmd is `mcpruntime mcp`: an MCP server on stdin/stdout.
func mcpCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP over stdio: execute_python, sessions and skills as MCP tools",
		Long: `Speak the Model Context Protocol on standard input and output, so that an MCP
client (an IDE, a chat app, another agent) can run Python in mcpruntime's
sandboxes. Tools:

  execute_python  run code (optional session_id, backend, timeout_ms); returns
                  stdout, stderr, exit code and error
  list_sessions   the live sessions
  close_session   end a session
  list_skills     the saved skills sandbox code can import

Sessions live as long as this process. Logs go to standard error only
(--log-level, $MCPRUNTIME_LOG); standard output carries the protocol.

Example client configuration: {"command": "mcpruntime", "args": ["mcp", "--config", "/path/to/runtime.hcl"]}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			defer m.Shutdown(context.WithoutCancel(ctx))
			defer recordReplay(a, m).Wait() // runs before Shutdown, as in exec
			srv := mcp.NewServer(mcp.ServerOptions{
				Manager: m,
				Tools:   a.hub(),
				Skills:  &skills.Registry{Dir: cfg.Skills.Dir},
				Version: version,
				Logger:  a.log(),
			})
			a.log().Info("serving MCP on stdio")
			if err := mcp.Serve(ctx, srv, cmd.InOrStdin(), os.Stdout, a.log()); err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			return nil
		},
	}
}
