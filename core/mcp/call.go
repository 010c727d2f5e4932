package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// CallTool calls tool on server with args (a JSON object, or empty) and
// implements bridge.Tools. The result is the tool's structured content when
// it has some, else its text content joined by newlines, as JSON. A tool
// that reports an error gives IsError with the error text as a JSON string;
// failures to reach the tool at all are returned as errors.
func (h *Hub) CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error) {
	c, err := h.server(server)
	if err != nil {
		return nil, err
	}
	if _, ok := c.byName[tool]; !ok {
		return nil, fmt.Errorf("%w %q on MCP server %q (its tools: %s)", ErrUnknownTool, tool, server, strings.Join(c.toolNames(), ", "))
	}
	arguments, err := decodeArgs(args)
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", server, tool, err)
	}
	cctx, cancel := context.WithTimeout(ctx, h.callTimeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = arguments
	res, err := c.client.CallTool(cctx, req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s.%s did not answer within %s", ErrToolTimeout, server, tool, h.callTimeout)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("call %s.%s: %w", server, tool, ctx.Err())
		}
		msg := fmt.Sprintf("call %s.%s: %v", server, tool, err)
		if tail := lastLines(c.stderr.String(), 5); tail != "" {
			msg += "; the server's last stderr lines:\n" + tail
		}
		return nil, errors.New(msg)
	}
	h.logger.Debug("tool called", "server", server, "tool", tool, "is_error", res.IsError)
	return toolResult(res)
}

func (c *serverConn) toolNames() []string {
	names := make([]string, len(c.tools))
	for i, t := range c.tools {
		names[i] = t.Name
	}
	sort.Strings(names)
	return names
}

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// decodeArgs turns the sandbox's JSON arguments into the object MCP wants.
func decodeArgs(args json.RawMessage) (map[string]any, error) {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return map[string]any{}, nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("arguments must be a JSON object: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
