package mcp

import (
	"bytes"
	"encoding/base64"
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
	return &sdk.ToolResult{Result: b, Content: contentParts(res.Content)}, nil
}

// contentParts is the content item by item when it holds more than text
// (sandbox code then gets a list of str, Image, Audio and Resource), else
// nil (it gets the text).
func contentParts(content []mcp.Content) []sdk.ContentPart {
	parts := make([]sdk.ContentPart, 0, len(content))
	onlyText := true
	for _, c := range content {
		p := contentPart(c)
		onlyText = onlyText && p.Type == sdk.ContentText
		parts = append(parts, p)
	}
	if onlyText {
		return nil
	}
	return parts
}

func contentPart(c mcp.Content) sdk.ContentPart {
	switch v := c.(type) {
	case mcp.TextContent:
		return sdk.ContentPart{Type: sdk.ContentText, Text: v.Text}
	case *mcp.TextContent:
		return sdk.ContentPart{Type: sdk.ContentText, Text: v.Text}
	case mcp.ImageContent:
		return sdk.ContentPart{Type: sdk.ContentImage, Data: decodeBase64(v.Data), MIMEType: v.MIMEType}
	case *mcp.ImageContent:
		return sdk.ContentPart{Type: sdk.ContentImage, Data: decodeBase64(v.Data), MIMEType: v.MIMEType}
	case mcp.AudioContent:
		return sdk.ContentPart{Type: sdk.ContentAudio, Data: decodeBase64(v.Data), MIMEType: v.MIMEType}
	case *mcp.AudioContent:
		return sdk.ContentPart{Type: sdk.ContentAudio, Data: decodeBase64(v.Data), MIMEType: v.MIMEType}
	case mcp.EmbeddedResource:
		return resourcePart(v.Resource)
	case *mcp.EmbeddedResource:
		return resourcePart(v.Resource)
	case mcp.ResourceLink:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType}
	case *mcp.ResourceLink:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType}
	}
	return sdk.ContentPart{Type: sdk.ContentText, Text: mcp.GetTextFromContent(c)}
}

func resourcePart(r mcp.ResourceContents) sdk.ContentPart {
	switch v := r.(type) {
	case mcp.TextResourceContents:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType, Text: v.Text}
	case *mcp.TextResourceContents:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType, Text: v.Text}
	case mcp.BlobResourceContents:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType, Data: decodeBase64(v.Blob)}
	case *mcp.BlobResourceContents:
		return sdk.ContentPart{Type: sdk.ContentResource, URI: v.URI, MIMEType: v.MIMEType, Data: decodeBase64(v.Blob)}
	}
	return sdk.ContentPart{Type: sdk.ContentResource}
}

// decodeBase64 decodes MCP's base64 data; data that is not base64 is kept
// as it came.
func decodeBase64(s string) []byte {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b
	}
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b
	}
	return []byte(s)
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
