package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/mcp"
)

// doctorMCP starts every mcp_server of runtime.hcl (each within its
// init_timeout) and reports one line per server: ready with its tool count
// and start time, or unavailable with the reason. Starting refreshes the
// listing cache that lazy starts rely on.
func doctorMCP(ctx context.Context, a *app) []check {
	cfg := a.cfg
	if len(cfg.MCP) == 0 {
		return nil
	}
	h, err := mcp.New(cfg.MCP, a.log(), mcp.WithStateDir(cfg.StateDir))
	if err != nil {
		return []check{{Name: "mcp servers", Info: err.Error(), Fix: "correct the mcp_server blocks of runtime.hcl"}}
	}
	defer h.Close()
	start := time.Now()
	_ = h.StartAll(ctx) // each server's outcome is in its status
	took := time.Since(start).Round(time.Millisecond)
	var out []check
	for _, st := range h.Status() {
		c := check{Name: "mcp " + st.Name}
		switch st.State {
		case mcp.StateReady:
			c.OK = true
			c.Info = fmt.Sprintf("ready: %d tools (%s; all servers started in %s)", len(st.Tools), st.Transport, took)
		default:
			c.Info = fmt.Sprintf("%s: %s", st.State, firstLine(st.Reason))
			c.Fix = mcpFix(st)
		}
		out = append(out, c)
	}
	return out
}

func mcpFix(st mcp.ServerStatus) string {
	switch {
	case strings.Contains(st.Reason, "not found"):
		return fmt.Sprintf("install the server's program or correct command in mcp_server %q; its calls fail until then, other code runs", st.Name)
	case strings.Contains(st.Reason, "timed out"):
		return fmt.Sprintf("the server did not answer initialize: check it speaks MCP on stdio, or raise init_timeout in mcp_server %q", st.Name)
	case st.Transport == "http":
		return fmt.Sprintf("check the url and headers of mcp_server %q and that the server is reachable", st.Name)
	}
	return fmt.Sprintf("run the command of mcp_server %q by hand to see why it exits; `--log-level debug doctor` shows its stderr", st.Name)
}

func firstLine(s string) string {
	lines := strings.SplitN(s, "\n", 2)
	if len(lines) == 2 {
		return lines[0] + " …"
	}
	return s
}
