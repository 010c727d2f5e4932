package mcpserve

import (
	"encoding/base64"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// displayContent is a rich output as an MCP content item: an image as
// image content, anything else as text, Markdown before HTML before plain
// text (the form a client's model reads best that the output has).
func displayContent(d *sdk.Display) mcp.Content {
	if imgs := d.Images(); len(imgs) > 0 {
		return mcp.NewImageContent(base64.StdEncoding.EncodeToString(d.Data[imgs[0]]), imgs[0])
	}
	for _, mime := range []string{sdk.MIMEMarkdown, sdk.MIMEHTML, sdk.MIMEText} {
		if v, ok := d.Data[mime]; ok {
			return mcp.NewTextContent(string(v))
		}
	}
	return mcp.NewTextContent(d.Summary())
}
