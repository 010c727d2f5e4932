package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// In `mcpruntime mcp` the core's stdin is the MCP client's request stream. A
// plugin (a third party) must not hold it, or it could read requests meant
// for the core.
func TestMCPStdinNotInherited(t *testing.T) {
	dir := project(t, "")
	c, err := client.NewStdioMCPClient(filepath.Join(binDir, "mcpruntime"), nil, "mcp", "--config", filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
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
