package builtins

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/catalog"
	"github.com/mcpruntime/mcpruntime/core/skills"
	"github.com/mcpruntime/mcpruntime/sdk"
)

type echoTools struct{ calls []string }

func (e *echoTools) CallTool(_ context.Context, server, tool string, _ json.RawMessage) (*sdk.ToolResult, error) {
	e.calls = append(e.calls, server+"."+tool)
	return &sdk.ToolResult{Result: json.RawMessage(`"ok"`)}, nil
}

func TestHostRoutesByServer(t *testing.T) {
	next := &echoTools{}
	inputs := &agent.Inputs{}
	inputs.Put("s1", &agent.Input{Value: "a large input"})
	h := &Host{Catalog: catalog.New(&skills.Registry{Dir: t.TempDir()}, nil), Inputs: inputs, Next: next}
	ctx := context.Background()

	if _, err := h.CallTool(ctx, "files", "read", nil); err != nil || len(next.calls) != 1 || next.calls[0] != "files.read" {
		t.Fatalf("a configured server's call = %v, next saw %v", err, next.calls)
	}
	res, err := h.CallTool(ctx, Server, "search_skills", json.RawMessage(`{"query":"anything"}`))
	if err != nil || string(res.Result) != "[]" {
		t.Fatalf("search_skills in an empty library = %s, %v (want [])", res.Result, err)
	}
	res, err = h.CallTool(bridge.WithSession(ctx, "s1"), Server, "input", nil)
	if err != nil || string(res.Result) != `"a large input"` {
		t.Fatalf("input of s1 = %s, %v", res.Result, err)
	}
	// Another session cannot read s1's input.
	if _, err := h.CallTool(bridge.WithSession(ctx, "s2"), Server, "input", nil); err == nil || !strings.Contains(err.Error(), "not started with an input") {
		t.Fatalf("input of s2 = %v", err)
	}
	if _, err := h.CallTool(ctx, Server, "rm_rf", nil); err == nil || !strings.Contains(err.Error(), "has no helper") {
		t.Fatalf("an unknown helper = %v", err)
	}
	if _, err := (&Host{}).CallTool(ctx, "files", "read", nil); err == nil || !strings.Contains(err.Error(), "no MCP server named") {
		t.Fatalf("a server with no hub = %v", err)
	}
}
