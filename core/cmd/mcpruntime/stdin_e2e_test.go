package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// In `mcpruntime mcp` the core's stdin is the MCP client's request stream. A
// plugin (a third party) must not hold it, or it could read requests meant
// for the core. With --local the plugins are the core's own children (by
// default they run under the session daemon, which has no such stdin).
func TestMCPStdinNotInherited(t *testing.T) {
	dir := project(t, "")
	c, ctx, _ := mcpSession(t, dir, "--local")
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "execute_python", map[string]any{"code": "x = 1", "session_id": "s"}
	if res, err := c.CallTool(ctx, req); err != nil || res.IsError {
		t.Fatalf("execute_python: %v %+v", err, res)
	}
	core := childRunning(t, os.Getpid(), filepath.Join(binDir, "mcpruntime"))
	plugin := childRunning(t, core, filepath.Join(binDir, "plugins", "mcpruntime-plugin-hostpython"))
	if in, err := os.Readlink("/proc/" + strconv.Itoa(plugin) + "/fd/0"); err != nil || in != os.DevNull {
		t.Fatalf("the plugin's stdin is %q (%v), want %s", in, err, os.DevNull)
	}
	// The core still reads its requests.
	req.Params.Arguments = map[string]any{"code": "print(x + 1)", "session_id": "s"}
	if res, err := c.CallTool(ctx, req); err != nil || res.IsError {
		t.Fatalf("execute_python after the check: %v %+v", err, res)
	}
}
