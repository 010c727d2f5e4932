package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// check is one line of the doctor's report.
type check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Warn marks a passed check that found something to look at.
	Warn bool   `json:"warn,omitempty"`
	Info string `json:"info"`
	Fix  string `json:"fix,omitempty"`
}

func doctorCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check configuration, plugins and each backend's prerequisites",
		Long: `Check runtime.hcl, the plugin directory (every plugin in it must start and
answer), what dead plugin processes left in the state dir, and every backend
runtime.hcl configures (plus the default one): each is started, configured,
and runs print(1+1) in a fresh session. Failures and warnings come with a
fix. Exits 1 if any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks := doctor(cmd.Context(), a)
			failed := 0
			for _, c := range checks {
				if !c.OK {
					failed++
				}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), checks)
			} else {
				printChecks(cmd.OutOrStdout(), checks)
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d check(s) failed", failed)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printChecks(w io.Writer, checks []check) {
	for _, c := range checks {
		mark := "ok  "
		switch {
		case !c.OK:
			mark = "FAIL"
		case c.Warn:
			mark = "warn"
		}
		fmt.Fprintf(w, "%s  %-24s %s\n", mark, c.Name, c.Info)
		if (!c.OK || c.Warn) && c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", c.Fix)
		}
	}
}

func doctor(ctx context.Context, a *app) []check {
	var out []check
	cfg, err := a.load()
	if err != nil {
		return append(out, check{Name: "config", Info: err.Error(), Fix: "correct runtime.hcl at the position shown"})
	}
	src := cfg.Path
	if src == "" {
		src = "built-in defaults (no runtime.hcl)"
	}
	out = append(out, check{Name: "config", OK: true, Info: src})

	if err := os.MkdirAll(cfg.Workspace, 0o755); err != nil {
		out = append(out, check{Name: "workspace", Info: err.Error(), Fix: "set runtime { workspace = ... } to a writable directory"})
	} else if f, err := os.CreateTemp(cfg.Workspace, ".doctor-*"); err != nil {
		out = append(out, check{Name: "workspace", Info: err.Error(), Fix: "make " + cfg.Workspace + " writable"})
	} else {
		f.Close()
		os.Remove(f.Name())
		out = append(out, check{Name: "workspace", OK: true, Info: cfg.Workspace})
	}

	found, err := pluginhost.Discover(cfg.PluginDir)
	switch {
	case err != nil:
		out = append(out, check{Name: "plugin dir", Info: err.Error(), Fix: "run `make build` or set runtime { plugin_dir = ... }"})
	case len(found) == 0:
		out = append(out, check{Name: "plugin dir", Info: "no plugins in " + cfg.PluginDir, Fix: "run `make build` (it puts plugins in bin/plugins beside bin/mcpruntime)"})
	default:
		var working []string
		var broken []check
		for _, st := range checkPlugins(ctx, found) {
			if !st.Broken() {
				working = append(working, st.Name)
				continue
			}
			broken = append(broken, check{Name: "plugin " + st.Name, Info: st.Path + ": " + strings.Join(strings.Fields(st.Error), " "), Fix: st.Fix})
		}
		dir := check{Name: "plugin dir", OK: len(working) > 0, Info: fmt.Sprintf("%s: %s", cfg.PluginDir, strings.Join(working, ", "))}
		if len(working) == 0 {
			dir.Info, dir.Fix = fmt.Sprintf("%s: no working plugin", cfg.PluginDir), "run `make build` (it puts plugins in bin/plugins beside bin/mcpruntime)"
		}
		out = append(out, dir)
		out = append(out, broken...)
	}
	out = append(out, leftoverChecks(cfg.StateDir)...)

	backends := map[string]bool{cfg.Backend: true}
	for name := range cfg.Sandboxes {
		backends[name] = true
	}
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, doctorBackend(ctx, a, name, name == cfg.Backend))
	}

	out = append(out, doctorMCP(ctx, a)...)
	if cfg.LLM.BaseURL == "" {
		out = append(out, check{Name: "llm", OK: true, Info: "not configured (needed by `run` and ask_llm; set llm { base_url } or OPENAI_BASE_URL)"})
	} else {
		out = append(out, check{Name: "llm", OK: true, Info: fmt.Sprintf("%s model %s (each attempt %s, each call with its retries %s)",
			cfg.LLM.BaseURL, cfg.LLM.Model, cfg.LLM.Timeout, cfg.LLM.Deadline)})
	}
	if _, h, err := daemon.Connect(ctx, cfg); err == nil {
		out = append(out, check{Name: "session daemon", OK: true, Info: fmt.Sprintf("pid %d, %d session(s)", h.Pid, h.Sessions)})
	} else {
		out = append(out, check{Name: "session daemon", OK: true, Info: "not running (starts on the first `exec --session`)"})
	}
	return out
}

// doctorBackend starts a backend for real and runs code in it.
func doctorBackend(ctx context.Context, a *app, name string, isDefault bool) check {
	label := "backend " + name
	if isDefault {
		label += " (default)"
	}
	cfg := a.cfg
	if _, err := pluginhost.Resolve(name, cfg.Sandbox(name).Plugin, cfg.PluginDir); err != nil {
		return check{Name: label, Info: err.Error(), Fix: fmt.Sprintf("run `make build`, or point sandbox %q { plugin = ... } at its executable", name)}
	}
	m, err := a.oneShotManager()
	if err != nil {
		return check{Name: label, Info: err.Error()}
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := m.Open(ctx, session.Options{Backend: name})
	if err != nil {
		return check{Name: label, Info: err.Error(), Fix: backendFix(name)}
	}
	var out []byte
	res, err := m.Exec(ctx, s, "print(1+1)", 0, func(e sdk.Event) { out = append(out, e.Data...) })
	if err != nil {
		return check{Name: label, Info: err.Error(), Fix: backendFix(name)}
	}
	if !res.OK() || string(out) != "2\n" {
		return check{Name: label, Info: fmt.Sprintf("print(1+1) gave %q (%s)", out, res.Message), Fix: backendFix(name)}
	}
	caps := s.Capabilities()
	took := time.Since(start).Round(time.Millisecond)
	protocol, err := m.Protocol(ctx, name)
	if err != nil {
		return check{Name: label, Info: fmt.Sprintf("plugin protocol: %v", err), Fix: backendFix(name)}
	}
	return check{Name: label, OK: true, Info: fmt.Sprintf("protocol=%d isolation=%s snapshots=%v; started and ran code in %s",
		protocol, caps.Isolation, caps.Snapshots, took)}
}

func backendFix(name string) string {
	mk := filepath.Join("plugins", name, "Makefile")
	if _, err := os.Stat(mk); err == nil {
		return fmt.Sprintf("run `make -C plugins/%s deps` to install what it needs, then `make build`", name)
	}
	return "see the plugin's README for its prerequisites; `mcpruntime --log-level debug doctor` shows its logs"
}
