package mcp

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Attach gives the sessions of m the tools of servers without starting
// any of them: it writes their stubs (from the listing cache, see
// WithStateDir) to a fresh directory mounted read-only at sdk.GuestTools
// and routes m's call_tool host calls to the Hub, which starts a server on
// its first call. A server with no cached listing is started in the
// background so its stubs appear (they are rewritten when its listing
// arrives); a server whose command is missing is reported with a warning
// and skipped. Nothing here waits for a server. Close the Hub after m's
// Shutdown (closing also removes the stub directory). With no servers it
// returns a nil Hub, whose methods are safe to call.
func Attach(_ context.Context, m *session.Manager, servers []config.MCPServer, logger hclog.Logger, opts ...Option) (*Hub, error) {
	if len(servers) == 0 {
		return nil, nil
	}
	h, err := New(servers, logger, opts...)
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
	h.OnToolsChanged(func() {
		if err := h.WriteStubs(dir); err != nil {
			h.logger.Warn("cannot rewrite the tool stubs", "error", err)
		}
	})
	if err := m.AddMount(dir, sdk.GuestTools); err != nil {
		h.Close()
		return nil, fmt.Errorf("mount tool stubs: %w", err)
	}
	m.Bridge().Tools = h.Coded()
	h.prepare()
	return h, nil
}

// prepare marks servers whose command cannot be found as unavailable (a
// warning, at once) and starts in the background those whose tool list is
// not cached.
func (h *Hub) prepare() {
	for _, s := range h.servers {
		if s.cfg.URL == "" && len(s.cfg.Command) > 0 {
			if _, err := exec.LookPath(s.cfg.Command[0]); err != nil {
				s.started(nil, fmt.Errorf("mcp_server %q: command %q not found: %w", s.cfg.Name, s.cfg.Command[0], err), 0)
				continue
			}
		}
		if st := s.status(); !st.ToolsKnown {
			s.kick()
		}
	}
}
