package config

import (
	"strings"
	"testing"
	"time"
)

func TestMCPServerBlocks(t *testing.T) {
	c, err := parse(t, `
mcp_server "files" {
  command       = ["node", "server.js"]
  timeout       = "30s"
  init_timeout  = "3s"
  tool_timeouts = { slow_tool = "5m", "odd-name" = "250ms" }
}
mcp_server "remote" {
  url     = "https://mcp.example.com/mcp"
  headers = { Authorization = "Bearer x" }
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.MCP) != 2 {
		t.Fatalf("MCP = %+v", c.MCP)
	}
	f, r := c.MCP[0], c.MCP[1]
	if f.Timeout != 30*time.Second || f.InitTimeout != 3*time.Second || f.ToolTimeouts["slow_tool"] != 5*time.Minute || f.ToolTimeouts["odd-name"] != 250*time.Millisecond || f.URL != "" {
		t.Fatalf("files = %+v", f)
	}
	if r.URL != "https://mcp.example.com/mcp" || r.Headers["Authorization"] != "Bearer x" || r.Command != nil {
		t.Fatalf("remote = %+v", r)
	}
}

func TestMCPServerBlockErrors(t *testing.T) {
	for src, want := range map[string]string{
		"mcp_server \"m\" {\n  command = [\"a\"]\n  url = \"http://x/mcp\"\n}\n": "runtime.hcl:3:9: Both command and url",
		"mcp_server \"m\" {\n}\n":                                                                  "runtime.hcl:1:1: Missing command or url",
		"mcp_server \"m\" {\n  url = \"ftp://x\"\n}\n":                                             "runtime.hcl:2:9: Invalid url",
		"mcp_server \"mcpruntime\" {\n  command = [\"a\"]\n}\n":                                    "runtime.hcl:1:1: Reserved MCP server name",
		"mcp_server \"m\" {\n  command = [\"a\"]\n}\nmcp_server \"m\" {\n  command = [\"b\"]\n}\n": "runtime.hcl:4:1: Duplicate MCP server",
		"mcp_server \"m\" {\n  command = [\"a\"]\n  tool_timeouts = { t = \"soon\" }\n}\n":         "runtime.hcl:3:19: Invalid tool_timeouts",
		"mcp_server \"m\" {\n  command = [\"a\"]\n  timeout = \"x\"\n}\n":                          "runtime.hcl:3:13: Invalid duration",
		"mcp_server \"m\" {\n  command = [\"a\"]\n  headers = { A = \"b\" }\n}\n":                  "runtime.hcl:1:1: headers for a command server",
		"mcp_server \"m\" {\n  url = \"http://x\"\n  env = { A = \"b\" }\n}\n":                     "runtime.hcl:1:1: env for a url server",
		"mcp_server \"m\" {\n  url = \"http://x\"\n  headers = { \"a b\" = \"c\" }\n}\n":           "runtime.hcl:1:1: Invalid header",
	} {
		_, err := parse(t, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}
