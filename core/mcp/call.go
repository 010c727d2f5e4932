package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// crashGrace is how long a call that lost its connection waits for the
// server's exit to be seen, to tell a crash from other transport errors.
const crashGrace = 2 * time.Second

// errCallTimeout is the cause of a call's context ending at its timeout.
var errCallTimeout = errors.New("call timeout")

// CallTool calls tool on server with args (a JSON object, or empty) and
// implements bridge.Tools. The server starts on its first call (the call
// waits for it). The result is the tool's structured content when it has
// some, else its text content joined by newlines, as JSON. A tool that
// reports an error gives IsError with the error text as a JSON string;
// failures to reach the tool at all are errors that match ErrUnknownServer,
// ErrUnknownTool, ErrUnavailable, ErrServerCrashed or ErrToolTimeout.
func (h *Hub) CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error) {
	s, err := h.server(server)
	if err != nil {
		return nil, err
	}
	arguments, err := decodeArgs(args)
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", server, tool, err)
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if !c.byName[tool] {
		return nil, fmt.Errorf("%w %q on MCP server %q (its tools: %s)", ErrUnknownTool, tool, server, strings.Join(c.toolNames(), ", "))
	}
	timeout, source := s.timeout(tool)
	// A call must end before the execution that makes it: a tool that
	// hangs then fails as a timeout the cell can catch, instead of taking
	// the cell (and its variables) with it at the sandbox's limit.
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if margin := min(2*time.Second, left/10); left-margin < timeout {
			timeout, source = max(left-margin, 0), "the time left to the execution"
		}
	}
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, errCallTimeout)
	defer cancel()
	// A server that dies mid-call fails the call at once.
	go func() {
		select {
		case <-c.gone():
			cancel()
		case <-cctx.Done():
		}
	}()

	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = arguments
	res, err := c.client.CallTool(cctx, req)
	if err != nil {
		return nil, h.callError(s, c, ctx, cctx, tool, timeout, source, err)
	}
	s.succeeded()
	h.logger.Debug("tool called", "server", server, "tool", tool, "is_error", res.IsError)
	return toolResult(res)
}

// callError explains a call that got no result.
func (h *Hub) callError(s *supervisor, c *serverConn, ctx, cctx context.Context, tool string, timeout time.Duration, source string, err error) error {
	server := s.cfg.Name
	var terr *transport.Error
	lost := errors.Is(err, transport.ErrTransportClosed) || errors.As(err, &terr)
	if lost && c.proc != nil && ctx.Err() == nil && !errors.Is(context.Cause(cctx), errCallTimeout) {
		// stdout closed: the process is exiting; wait to see it go.
		select {
		case <-c.gone():
		case <-time.After(crashGrace):
		}
	}
	switch {
	case c.isGone():
		s.forget(c)
		return fmt.Errorf("%w: MCP server %s exited during call %s: %s", ErrServerCrashed, server, tool, c.exitReason())
	case ctx.Err() != nil:
		return fmt.Errorf("call %s.%s: %w", server, tool, ctx.Err())
	case errors.Is(context.Cause(cctx), errCallTimeout):
		return fmt.Errorf("%w: %s.%s did not answer within %s (%s; set tool_timeouts = { %s = \"...\" } in mcp_server %q to change it)",
			ErrToolTimeout, server, tool, timeout.Round(time.Millisecond), source, tool, server)
	case lost:
		// A broken connection (an HTTP server gone, a stdio server that
		// closed stdout): the next call connects afresh.
		s.dropped(c, err)
		return fmt.Errorf("%w: MCP server %s: the connection broke during call %s: %v", ErrServerCrashed, server, tool, err)
	}
	msg := fmt.Sprintf("call %s.%s: %v", server, tool, err)
	if tail := lastLines(c.stderr.String(), 5); tail != "" {
		msg += "; the server's last stderr lines:\n" + tail
	}
	return errors.New(msg)
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
