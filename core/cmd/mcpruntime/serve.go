package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/server"
)

func serveCmd(a *app) *cobra.Command {
	var listen string
	var asDaemon bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (sessions, streaming execution), MCP at /mcp and the web console at /",
		Long: `Serve the HTTP API on server.listen (default 127.0.0.1:7878), MCP over
streamable HTTP at /mcp (the tools of "mcpruntime mcp", on the same sessions),
the web console at / and the API's OpenAPI 3.1 document at /v1/openapi.json.
A bearer token (server.token) is required to listen on anything but loopback;
it, the Host and the Origin rules apply to /mcp as to /v1.

With --daemon it serves the workspace's unix socket instead: this is the
session daemon that "exec --session" starts on demand.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			rec := recordReplay(a, m)
			defer rec.Wait()
			// A stopping server or daemon hibernates its sessions with the
			// replay store's state saves; the next one restores them.
			m.SetCheckpointer(replay.NewHibernator(m, a.log(), cfg.StateDir))
			mcpSrv, err := newMCPServer(a, m)
			if err != nil {
				return err
			}
			// MCP over streamable HTTP at /mcp, behind the API's guard and
			// token; the daemon's is what `mcpruntime mcp` relays to.
			opts := []server.Option{server.WithRecorder(rec), server.WithMCP(mcpSrv.Handler())}
			if runner := a.agentRunner(m, rec); runner != nil {
				opts = append(opts, server.WithRunner(runner))
			}
			if asDaemon {
				a.log().Info("session daemon starting", "socket", daemon.SocketPath(cfg), "idle_exit", cfg.DaemonIdle)
				return daemon.Serve(cmd.Context(), cfg, m, a.log(), opts...)
			}
			opts = append(opts, consoleOptions(a, cfg, rec)...)
			addr := cfg.Server.Listen
			if listen != "" {
				addr = listen
			}
			if !loopback(addr) && cfg.Server.Token == "" {
				return &exitError{code: exitUsage, err: fmt.Errorf("refusing to serve on %s without server.token: set one in runtime.hcl (e.g. token = env(\"MCPRUNTIME_TOKEN\"))", addr)}
			}
			return daemon.ServeTCP(cmd.Context(), cfg, m, addr, cfg.Server.Token, a.log(), opts...)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default server.listen)")
	cmd.Flags().BoolVar(&asDaemon, "daemon", false, "serve the workspace's unix socket (session daemon)")
	return cmd
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func daemonCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Short: "Inspect or stop the workspace's session daemon"}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether the session daemon runs and its sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			c, h, err := daemon.Connect(cmd.Context(), cfg)
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "no session daemon for %s\n", cfg.Workspace)
				return nil
			}
			sessions, err := c.Sessions(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "daemon pid %d on %s, %d session(s)\n", h.Pid, daemon.SocketPath(cfg), len(sessions))
			for _, s := range sessions {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s  backend=%s  state=%s  execs=%d  created=%s\n", s.ID, s.Backend, s.State, s.Execs, s.Created.Format(time.RFC3339))
			}
			return nil
		},
	}
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the session daemon (its sessions hibernate, its plugins stop)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			c, h, err := daemon.Connect(cmd.Context(), cfg)
			if err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), "no session daemon running")
				return nil
			}
			if err := c.Shutdown(cmd.Context()); err != nil {
				return err
			}
			// Stopped means gone: its sessions ended and its plugins
			// stopped, not merely that it no longer answers.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if syscall.Kill(h.Pid, 0) != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "stopped daemon pid %d\n", h.Pid)
					return nil
				}
				time.Sleep(20 * time.Millisecond)
			}
			return errors.New("daemon did not stop within 30s")
		},
	}
	cmd.AddCommand(status, stop)
	return cmd
}
