package mcp

import (
	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// newHTTPTransport reaches a streamable-HTTP server at s.URL, sending
// s.Headers (e.g. Authorization) with every request. Timeouts come from
// the contexts of the start and of each call, not from the HTTP client.
func newHTTPTransport(s config.MCPServer) (*transport.StreamableHTTP, error) {
	var opts []transport.StreamableHTTPCOption
	if len(s.Headers) > 0 {
		opts = append(opts, transport.WithHTTPHeaders(s.Headers))
	}
	return transport.NewStreamableHTTP(s.URL, opts...)
}
