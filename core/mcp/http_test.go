package mcp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// A streamable-HTTP server is reached at its url with the block's headers;
// one that goes away fails the call and is reconnected when it is back.
func TestStreamableHTTPServer(t *testing.T) {
	s := server.NewMCPServer("remote", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcpgo.NewTool("whoami", mcpgo.WithDescription("Echo the Authorization header.")),
		func(ctx context.Context, _ mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			auth, _ := ctx.Value(authKey{}).(string)
			return mcpgo.NewToolResultText(auth), nil
		})
	handler := server.NewStreamableHTTPServer(s, server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
		return context.WithValue(ctx, authKey{}, r.Header.Get("Authorization"))
	}))
	ts := httptest.NewServer(handler)
	defer ts.Close()

	cfg := config.MCPServer{Name: "remote", URL: ts.URL + "/mcp", Headers: map[string]string{"Authorization": "Bearer t0k"}}
	h := newHub(t, []config.MCPServer{cfg})
	res, err := h.CallTool(context.Background(), "remote", "whoami", nil)
	if err != nil || string(res.Result) != `"Bearer t0k"` {
		t.Fatalf("whoami = %v, %v", res, err)
	}
	if st := h.Status()[0]; st.Transport != "http" || st.State != StateReady || len(st.Tools) != 1 {
		t.Fatalf("status: %+v", st)
	}

	down := config.MCPServer{Name: "down", URL: "http://127.0.0.1:1/mcp"}
	h2 := newHub(t, []config.MCPServer{down})
	if _, err := h2.CallTool(context.Background(), "down", "x", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unreachable server: %v", err)
	}
}

type authKey struct{}
