// Package builtins answers the host calls sandbox code addresses to the
// runtime itself, as the MCP server named Server: search_skills,
// search_tools and describe over the catalog, and input (a run's large
// input, loaded into the session as `context`).
package builtins

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/catalog"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Server is the MCP server name under which sandbox code reaches the
// runtime's own helpers (search_skills, search_tools, describe); runtime.hcl
// may not give it to an mcp_server block.
const Server = "mcpruntime"

// Caller calls MCP tools (bridge.Tools; a *mcp.Hub).
type Caller interface {
	CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error)
}

// Host answers sandbox tool calls: those addressed to Server itself, the
// rest from Next (nil: no MCP servers are configured).
type Host struct {
	Catalog *catalog.Catalog
	// Inputs holds runs' inputs by session (nil: runs have none).
	Inputs *agent.Inputs
	Next   Caller
}

// CallTool implements bridge.Tools.
func (h *Host) CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error) {
	if server != Server {
		if h.Next == nil {
			return nil, bridge.NoServer(server)
		}
		return h.Next.CallTool(ctx, server, tool, args)
	}
	var req struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
		Name  string `json:"name"`
	}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &req); err != nil {
			return nil, fmt.Errorf("%s.%s: arguments: %w", Server, tool, err)
		}
	}
	if req.Limit <= 0 {
		req.Limit = 10
	}
	var out any
	var err error
	switch tool {
	case "search_skills":
		out, err = h.Catalog.Search(catalog.KindSkill, req.Query, req.Limit)
	case "search_tools":
		out, err = h.Catalog.Search(catalog.KindTool, req.Query, req.Limit)
	case "describe":
		out, err = h.Catalog.Describe(req.Name)
	case "input":
		return h.input(ctx)
	default:
		return nil, fmt.Errorf("%s has no helper %q (it has search_skills, search_tools, describe)", Server, tool)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: encode result: %w", Server, tool, err)
	}
	return &sdk.ToolResult{Result: b}, nil
}

// input returns the input of the calling session's run.
func (h *Host) input(ctx context.Context) (*sdk.ToolResult, error) {
	id := bridge.SessionFrom(ctx)
	var in *agent.Input
	if h.Inputs != nil {
		in, _ = h.Inputs.Get(id)
	}
	if in == nil {
		return nil, fmt.Errorf("session %s was not started with an input (run --context)", id)
	}
	b, err := in.JSON()
	if err != nil {
		return nil, err
	}
	return &sdk.ToolResult{Result: b}, nil
}
