package server

import (
	"net/http"
)

// MCPPath is where WithMCP mounts an MCP handler.
const MCPPath = "/mcp"

// WithMCP serves h (MCP over streamable HTTP) at /mcp, behind the same
// guard (Host, Origin, Sec-Fetch-Site, JSON bodies) and bearer token as
// the rest of the API, with the request body capped at the server's
// max_body. The MCP protocol's session, streaming and cancellation are
// h's business.
func WithMCP(h http.Handler) Option {
	return func(s *Server) {
		s.mux.Handle(MCPPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxBody)
			}
			h.ServeHTTP(w, r)
		}))
	}
}
