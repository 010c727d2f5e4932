package mcp

import (
	"encoding/base64"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func TestToolResultContentParts(t *testing.T) {
	png := []byte{0x89, 'P', 'N', 'G', 0, 255}
	res, err := toolResult(&mcp.CallToolResult{Content: []mcp.Content{
		mcp.TextContent{Type: "text", Text: "a chart"},
		mcp.ImageContent{Type: "image", Data: base64.StdEncoding.EncodeToString(png), MIMEType: "image/png"},
		mcp.EmbeddedResource{Type: "resource", Resource: mcp.BlobResourceContents{URI: "file:///x", MIMEType: "application/octet-stream", Blob: base64.StdEncoding.EncodeToString([]byte{1, 2})}},
		mcp.ResourceLink{Type: "resource_link", URI: "file:///y", MIMEType: "text/plain"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.ContentPart{
		{Type: sdk.ContentText, Text: "a chart"},
		{Type: sdk.ContentImage, Data: png, MIMEType: "image/png"},
		{Type: sdk.ContentResource, URI: "file:///x", MIMEType: "application/octet-stream", Data: []byte{1, 2}},
		{Type: sdk.ContentResource, URI: "file:///y", MIMEType: "text/plain"},
	}
	if len(res.Content) != len(want) {
		t.Fatalf("content %+v", res.Content)
	}
	for i := range want {
		g, w := res.Content[i], want[i]
		if g.Type != w.Type || g.Text != w.Text || string(g.Data) != string(w.Data) || g.MIMEType != w.MIMEType || g.URI != w.URI {
			t.Errorf("part %d: %+v, want %+v", i, g, w)
		}
	}
	text, err := toolResult(mcp.NewToolResultText("only text"))
	if err != nil || text.Content != nil || string(text.Result) != `"only text"` {
		t.Fatalf("text-only result %+v %v", text, err)
	}
}
