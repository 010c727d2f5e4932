package mcp

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Attach gives the sessions of m the tools of servers: it starts them,
// writes their stubs to a fresh directory mounted read-only at
// sdk.GuestTools, and routes m's call_tool host calls to the Hub. Call it
// before the first session is opened, and Close the Hub after m's Shutdown
// (closing also removes the stub directory). With no servers it returns a
// nil Hub, whose methods are safe to call.
func Attach(ctx context.Context, m *session.Manager, servers []config.MCPServer, logger hclog.Logger, opts ...Option) (*Hub, error) {
	if len(servers) == 0 {
		return nil, nil
	}
	h, err := Start(ctx, servers, logger, opts...)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mcpruntime-tools-")
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("tool stubs: %w", err)
	}
	h.OnClose(func() { os.RemoveAll(dir) })
	if err := h.WriteStubs(dir); err != nil {
		h.Close()
		return nil, err
	}
	if err := m.AddMount(dir, sdk.GuestTools); err != nil {
		h.Close()
		return nil, fmt.Errorf("mount tool stubs: %w", err)
	}
	m.Bridge().Tools = h
	return h, nil
}
