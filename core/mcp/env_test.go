package mcp

import (
	"testing"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// An MCP server is a third party: the core's secrets stay in the core. Only
// the allow-listed variables, pass_env and env reach it.
func TestServerEnvironmentIsAllowListed(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-test-secret")
	t.Setenv("MCPRUNTIME_TOKEN", "token-test-secret")
	t.Setenv("PASSED_ON", "visible")
	s := calc(map[string]string{"SET_HERE": "set"})
	s.PassEnv = []string{"PASSED_ON", "NOT_SET_ANYWHERE"}
	h := startHub(t, []config.MCPServer{s})
	for name, want := range map[string]string{
		"OPENAI_API_KEY":   `""`,
		"MCPRUNTIME_TOKEN": `""`,
		"PASSED_ON":        `"visible"`,
		"SET_HERE":         `"set"`,
	} {
		if got, _ := call(t, h, "getenv", `{"name": "`+name+`"}`); got != want {
			t.Errorf("server's %s = %s, want %s", name, got, want)
		}
	}
	if got, _ := call(t, h, "getenv", `{"name": "PATH"}`); got == `""` {
		t.Error("the server has no PATH")
	}
}
