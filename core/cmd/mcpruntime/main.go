// Command mcpruntime runs code that language models write, in pluggable
// sandboxes: see `mcpruntime --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/mcpruntime/mcpruntime/core/agent"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/mcp"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Exit statuses of mcpruntime itself. An executed program's own status is
// passed through unchanged; these mark failures of the runtime.
const (
	exitUsage   = 2
	exitRuntime = 125 // like `docker run`: the runtime, not the code, failed
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// app holds what every command shares: flags, configuration, logger.
type app struct {
	configPath string
	logLevel   string

	cfg    *config.Config
	logger hclog.Logger
	// hubs are the MCP servers started for this command's managers; closed
	// when the command ends.
	hubs []*mcp.Hub
	// inputs are the inputs of this process's runs, by session, until
	// their set-up cell takes them.
	inputs agent.Inputs
}

// hub is the MCP hub of the latest manager (nil without mcp_server blocks).
func (a *app) hub() *mcp.Hub {
	if len(a.hubs) == 0 {
		return nil
	}
	return a.hubs[len(a.hubs)-1]
}

func (a *app) closeHubs() {
	for _, h := range a.hubs {
		h.Close()
	}
	a.hubs = nil
}

func (a *app) load() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path, optional := a.configPath, false
	if path == "" {
		path, optional = "runtime.hcl", true
	}
	cfg, err := config.Load(path, optional)
	if err == nil {
		err = checkBackend(cfg)
	}
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	a.cfg = cfg
	return cfg, nil
}

func (a *app) log() hclog.Logger {
	if a.logger == nil {
		level := a.logLevel
		if level == "" {
			level = os.Getenv("MCPRUNTIME_LOG")
		}
		if level == "" {
			level = "warn"
		}
		a.logger = hclog.New(&hclog.LoggerOptions{Name: "mcpruntime", Level: hclog.LevelFromString(level), Output: os.Stderr})
	}
	return a.logger
}

// manager builds an in-process session manager.
func (a *app) manager() (*session.Manager, error) { return a.newManager(true) }

// oneShotManager is a manager for a single execution: backends start
// without warm pools.
func (a *app) oneShotManager() (*session.Manager, error) { return a.newManager(false) }

func (a *app) newManager(pools bool) (*session.Manager, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, err
	}
	host := pluginhost.New(cfg, a.log())
	if !pools {
		host.DisablePools()
	}
	br := &bridge.Bridge{LLM: newLLM(cfg, a.log())}
	m := session.New(cfg, host, br, a.log())
	// The replay recorder's own executions (state saves) must not take the
	// state_lost note a plugin restart leaves for the caller's next one.
	m.SetInternal(replay.IsInternal)
	// Servers start on first use; their tool lists are cached in the state
	// dir so that stubs exist without starting them.
	hub, err := mcp.Attach(context.Background(), m, cfg.MCP, a.log(), mcp.WithStateDir(cfg.StateDir))
	if err != nil {
		host.Shutdown()
		return nil, &exitError{code: exitRuntime, err: err}
	}
	if hub != nil {
		a.hubs = append(a.hubs, hub)
	}
	a.wireBuiltins(m, hub)
	return m, nil
}

// daemonArgs are the global flags a started daemon must share with us.
func (a *app) daemonArgs() []string {
	var args []string
	if a.cfg != nil && a.cfg.Path != "" {
		args = append(args, "--config", a.cfg.Path)
	}
	if a.logLevel != "" {
		args = append(args, "--log-level", a.logLevel)
	}
	return args
}

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "mcpruntime",
		Short: "Run the code language models write, in pluggable sandboxes",
		Long: `mcpruntime runs Python written by language models in sandboxes (WebAssembly,
containers, microVMs, or any third-party plugin), keeps sessions, runs an
agent loop that grows a library of skills, and records every step for replay.

Backends are plugins selected in runtime.hcl (default ./runtime.hcl; built-in
defaults when absent).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "path to runtime.hcl (default ./runtime.hcl if present)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "log level: trace, debug, info, warn, error (default warn, or $MCPRUNTIME_LOG)")
	root.AddCommand(execCmd(a), pluginsCmd(a), doctorCmd(a), versionCmd(), serveCmd(a), daemonCmd(a), benchCmd(a), mcpCmd(a), consoleCmd(a))
	cobra.OnFinalize(a.closeHubs)
	addAgentCommands(root, a)
	return root
}

func main() {
	in, err := keepStdin()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpruntime:", err)
		os.Exit(exitRuntime)
	}
	root := newRoot()
	root.SetIn(in)
	err = root.ExecuteContext(context.Background())
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "mcpruntime:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "mcpruntime:", err)
	if strings.Contains(err.Error(), "unknown command") || strings.Contains(err.Error(), "flag") {
		os.Exit(exitUsage)
	}
	os.Exit(exitRuntime)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "mcpruntime %s (plugin protocol %d; plugins speaking %d to %d work)\nplugins: %s\n",
				version, sdk.ProtocolVersion, sdk.MinProtocolVersion, sdk.ProtocolVersion, filepath.Clean(config.DefaultPluginDir()))
		},
	}
}
