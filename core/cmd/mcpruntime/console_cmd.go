package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/console"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// consoleOptions are what `serve` adds for the web console: the console
// itself at /, and the API endpoints it uses beyond sessions and runs
// (replay steps, diffs, fork/resume, skills, backends and doctor).
func consoleOptions(a *app, cfg *config.Config, rec *replay.Recorder) []server.Option {
	return []server.Option{
		server.WithConsole(console.Handler()),
		server.WithReplayAPI(cfg.Workspace, rec),
		server.WithSkills(&skills.Registry{Dir: cfg.Skills.Dir}),
		server.WithBackends(server.Backends{
			Plugins: func(ctx context.Context) any { return pluginRows(ctx, cfg) },
			Doctor:  func(ctx context.Context) any { return doctor(ctx, a) },
		}),
	}
}

// pluginRow is one plugin as GET /v1/backends (and `plugins list --json`) shows it.
type pluginRow struct {
	pluginStatus
	Default bool `json:"default"`
}

func pluginRows(ctx context.Context, cfg *config.Config) []pluginRow {
	rows := []pluginRow{}
	found, err := pluginhost.Discover(cfg.PluginDir)
	if err != nil {
		return append(rows, pluginRow{pluginStatus: pluginStatus{Found: pluginhost.Found{Name: "plugin dir", Path: cfg.PluginDir}, Error: err.Error()}})
	}
	for name, sb := range cfg.Sandboxes {
		if sb.Plugin != "" {
			found = append(found, pluginhost.Found{Name: name, Path: sb.Plugin})
		}
	}
	for _, st := range checkPlugins(ctx, found) {
		rows = append(rows, pluginRow{pluginStatus: st, Default: st.Name == cfg.Backend})
	}
	return rows
}

// consoleCmd is `mcpruntime console`: the URL of the web console, with
// a server started on loopback when none answers on server.listen.
func consoleCmd(a *app) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Open the web console (starts `serve` on loopback if none runs)",
		Long: `Print the URL of the web console that "mcpruntime serve" serves at /: sessions
with a cell editor, agent runs, replay timelines with workspace diffs and
fork/resume from any step, skills and backends. When nothing answers on
server.listen (or --listen), a server is started there in the background
(loopback only; its log goes to <state_dir>/console.log).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			addr := cfg.Server.Listen
			if listen != "" {
				addr = listen
			}
			url := "http://" + addr + "/"
			if serving(cmd.Context(), addr) {
				fmt.Fprintln(cmd.OutOrStdout(), url)
				return nil
			}
			if !loopback(addr) {
				return &exitError{code: exitUsage, err: fmt.Errorf("nothing serves %s, and the console starts a server only on loopback: run `mcpruntime serve` there", addr)}
			}
			if err := startConsoleServer(a, cfg, addr); err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			deadline := time.Now().Add(60 * time.Second)
			for !serving(cmd.Context(), addr) {
				if time.Now().After(deadline) {
					return &exitError{code: exitRuntime, err: fmt.Errorf("the server on %s did not come up within 60s (see %s/console.log)", addr, cfg.StateDir)}
				}
				time.Sleep(100 * time.Millisecond)
			}
			fmt.Fprintln(cmd.OutOrStdout(), url)
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address of the server (default server.listen)")
	return cmd
}

// serving reports whether an mcpruntime server answers on addr.
func serving(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+server.OpenAPIPath, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startConsoleServer starts `mcpruntime serve --listen addr` detached from this
// process (its own session), logging to the state dir.
func startConsoleServer(a *app, cfg *config.Config, addr string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	logf, err := os.OpenFile(cfg.StateDir+"/console.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer logf.Close()
	args := append(a.daemonArgs(), "serve", "--listen", addr)
	c := exec.Command(self, args...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("console: start serve: %w", err)
	}
	if err := c.Process.Release(); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}
