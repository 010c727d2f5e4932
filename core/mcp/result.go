package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// toolResult converts an MCP result to what the sandbox receives.
func toolResult(res *mcp.CallToolResult) (*sdk.ToolResult, error) {
	if res.IsError {
		text := contentText(res.Content)
		if text == "" {
			text = "the tool reported an error without a message"
		}
		b, err := json.Marshal(text)
		if err != nil {
			return nil, fmt.Errorf("encode tool error: %w", err)
		}
		return &sdk.ToolResult{Result: b, IsError: true}, nil
	}
	if len(res.RawStructuredContent) > 0 && string(bytes.TrimSpace(res.RawStructuredContent)) != "null" {
		return &sdk.ToolResult{Result: append(json.RawMessage(nil), res.RawStructuredContent...)}, nil
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("encode structured tool result: %w", err)
		}
		return &sdk.ToolResult{Result: b}, nil
	}
	b, err := json.Marshal(contentText(res.Content))
	if err != nil {
		return nil, fmt.Errorf("encode tool result: %w", err)
	}
	return &sdk.ToolResult{Result: b}, nil
}

// contentText joins the text of a result's content items; other kinds of
// content are described in brackets.
func contentText(content []mcp.Content) string {
	parts := make([]string, 0, len(content))
	for _, c := range content {
		switch v := c.(type) {
		case mcp.TextContent:
			parts = append(parts, v.Text)
		case *mcp.TextContent:
			parts = append(parts, v.Text)
		case mcp.ImageContent:
			parts = append(parts, fmt.Sprintf("[image %s, %d base64 bytes]", v.MIMEType, len(v.Data)))
		case mcp.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio %s, %d base64 bytes]", v.MIMEType, len(v.Data)))
		case mcp.EmbeddedResource:
			if t, ok := v.Resource.(mcp.TextResourceContents); ok {
				parts = append(parts, t.Text)
			} else {
				parts = append(parts, "[embedded resource]")
			}
		case mcp.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource %s]", v.URI))
		default:
			parts = append(parts, mcp.GetTextFromContent(c))
		}
	}
	return strings.Join(parts, "\n")
}
