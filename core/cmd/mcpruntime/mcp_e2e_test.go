package main

import (
	"context"
	"fmt"
	"github.com/mcpruntime/mcpruntime/core/catalog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/mcp"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

var (
	testmcpOnce sync.Once
	testmcpErr  error
)

// testmcpBin builds core/internal/testmcp, a small MCP server, into binDir.
func testmcpBin(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "testmcp")
	testmcpOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path, "../../internal/testmcp").CombinedOutput()
		if err != nil {
			testmcpErr = fmt.Errorf("build testmcp: %v\n%s", err, out)
		}
	})
	if testmcpErr != nil {
		t.Fatal(testmcpErr)
	}
	return path
}

// mcpServerBlock configures the test MCP server as "calc".
func mcpServerBlock(t *testing.T) string {
	return fmt.Sprintf("mcp_server \"calc\" {\n  command = [%q]\n  env = { TESTMCP_GREETING = \"hello\" }\n}\n", testmcpBin(t))
}

// TestMCPToolsInSession runs sandbox code that imports and calls MCP tool
// stubs, through a session.Manager with the hostpython plugin and a real
// MCP server process.
func TestMCPToolsInSession(t *testing.T) {
	dir := t.TempDir()
	hcl := "runtime {\n  backend = \"hostpython\"\n  plugin_dir = \"" + filepath.Join(binDir, "plugins") + "\"\n}\n" + mcpServerBlock(t)
	cfg, err := config.Parse([]byte(hcl), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := session.New(cfg, pluginhost.New(cfg, nil), nil, nil)
	hub, err := mcp.Attach(ctx, m, cfg.MCP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	defer m.Shutdown(ctx)
	s, err := m.Open(ctx, session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(code string) (string, string, int) {
		t.Helper()
		var out, errb strings.Builder
		res, err := m.Exec(ctx, s, code, 20*time.Second, func(e sdk.Event) {
			switch e.Kind {
			case sdk.EventStdout:
				out.Write(e.Data)
			case sdk.EventStderr:
				errb.Write(e.Data)
			}
		})
		if err != nil {
			t.Fatalf("exec %q: %v", code, err)
		}
		return out.String(), errb.String(), res.ExitCode
	}
	if out, errs, code := run("from tools.calc import add; print(add(2, 3))"); out != "5\n" || code != 0 {
		t.Fatalf("add(2, 3): stdout %q stderr %q exit %d", out, errs, code)
	}
	out, errs, code := run(`import mcpruntime
import tools.calc as calc
print(calc.echo("hi", shout=True), calc.echo(text="lo"))
print(calc.stats([1, 2, 3.5]))
print(calc.getenv("TESTMCP_GREETING"))
try:
    calc.fail()
except mcpruntime.HostCallError as e:
    print("failed:", e)
try:
    mcpruntime.call_tool("calc", "nope")
except mcpruntime.HostCallError as e:
    print("unknown:", e)
`)
	want := "HI lo\n{'count': 3, 'sum': 6.5}\nhello\n"
	if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "failed: ") || !strings.Contains(out, "something broke") ||
		!strings.Contains(out, "unknown MCP tool \"nope\"") {
		t.Fatalf("tool calls: stdout %q stderr %q exit %d", out, errs, code)
	}
	if l, _ := catalog.New(nil, hub).Prompt("", 0); !strings.Contains(l, "tools.calc.add(a: int, b: int) — Add two integers.") {
		t.Fatalf("listing:\n%s", l)
	}
}

// TestMCPToolsFromExec is the same through the CLI.
func TestMCPToolsFromExec(t *testing.T) {
	dir := project(t, mcpServerBlock(t))
	r := cli(t, dir, "", "exec", "--backend", "hostpython", "-c", "from tools.calc import add; print(add(2, 3))")
	if r.stdout != "5\n" || r.code != 0 {
		t.Fatalf("exec add(2, 3): %+v", r)
	}
	r = cli(t, dir, "", "exec", "-c", "import tools.calc as c; c.fail()")
	if r.code != 1 || !strings.Contains(r.stderr, "ToolError") || !strings.Contains(r.stderr, "something broke") {
		t.Fatalf("exec fail(): %+v", r)
	}
	bad := project(t, "mcp_server \"ghost\" {\n  command = [\"no-such-mcp-server-xyz\"]\n}\n")
	// A server that cannot start is skipped with a warning.
	r = cli(t, bad, "", "exec", "-c", "print(1)")
	if r.code != 0 || r.stdout != "1\n" || !strings.Contains(r.stderr, `mcp_server \"ghost\"`) || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("missing MCP server command: %+v", r)
	}
}

// mcpSession starts `mcpruntime mcp` for the project in dir as a stdio MCP
// client would, and initializes it. Both end with the test.
func mcpSession(t *testing.T, dir string, extra ...string) (*client.Client, context.Context, *mcpgo.InitializeResult) {
	t.Helper()
	args := append([]string{"mcp", "--config", filepath.Join(dir, "runtime.hcl")}, extra...)
	c, err := client.NewStdioMCPClient(filepath.Join(binDir, "mcpruntime"), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "e2e", Version: "1"}
	info, err := c.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c, ctx, info
}

// TestMCPServe drives `mcpruntime mcp` with an MCP stdio client.
func TestMCPServe(t *testing.T) {
	dir := project(t, mcpServerBlock(t))
	c, ctx, info := mcpSession(t, dir)
	if info.ServerInfo.Name != "mcpruntime" {
		t.Fatalf("server info: %+v", info.ServerInfo)
	}
	tools, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "execute_python") || !strings.Contains(got, "list_sessions") ||
		!strings.Contains(got, "close_session") || !strings.Contains(got, "list_skills") {
		t.Fatalf("tools: %s", got)
	}
	callTool := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		req := mcpgo.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = name, args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var text []string
		for _, content := range res.Content {
			text = append(text, mcpgo.GetTextFromContent(content))
		}
		return strings.Join(text, "\n"), res.IsError
	}

	if out, isErr := callTool("execute_python", map[string]any{"code": "x = 41\nprint('set')", "session_id": "s1"}); isErr || !strings.Contains(out, "[stdout]\nset\n") {
		t.Fatalf("first execution: %q", out)
	}
	if out, isErr := callTool("execute_python", map[string]any{"code": "print(x + 1)", "session_id": "s1"}); isErr || !strings.Contains(out, "[stdout]\n42\n") || !strings.Contains(out, "[exit_code] 0") {
		t.Fatalf("state did not persist: %q", out)
	}
	if out, _ := callTool("list_sessions", nil); !strings.Contains(out, "s1  backend=hostpython  state=live  execs=") {
		t.Fatalf("list_sessions: %q", out)
	}
	if out, isErr := callTool("execute_python", map[string]any{"code": "1/0"}); !isErr || !strings.Contains(out, "ZeroDivisionError") || !strings.Contains(out, "[exit_code] 1") {
		t.Fatalf("failing code: %q (isError %v)", out, isErr)
	}
	if out, isErr := callTool("execute_python", map[string]any{"code": "while True: pass", "timeout_ms": 500}); !isErr || !strings.Contains(out, "[exit_code] 124") {
		t.Fatalf("timeout: %q (isError %v)", out, isErr)
	}
	if out, isErr := callTool("execute_python", map[string]any{"code": "print(x)"}); !isErr || !strings.Contains(out, "NameError") {
		t.Fatalf("a one-off session saw s1's state: %q", out)
	}
	if out, isErr := callTool("close_session", map[string]any{"session_id": "s1"}); isErr || !strings.Contains(out, "closed") {
		t.Fatalf("close_session: %q", out)
	}
	if out, _ := callTool("list_sessions", nil); !strings.Contains(out, "no live sessions") {
		t.Fatalf("sessions left after close and one-off runs: %q", out)
	}
	if out, isErr := callTool("close_session", map[string]any{"session_id": "s1"}); !isErr || !strings.Contains(out, "s1") {
		t.Fatalf("closing twice: %q", out)
	}
	if out, isErr := callTool("list_skills", nil); isErr || !strings.Contains(out, "no skills") {
		t.Fatalf("list_skills: %q", out)
	}
	// MCP tools of runtime.hcl are importable from code run over MCP.
	out, _ := callTool("execute_python", map[string]any{"code": "from tools.calc import add; print(add(2, 3))"})
	if !strings.Contains(out, "[stdout]\n5\n") {
		t.Fatalf("tools over MCP: %q", out)
	}
}
