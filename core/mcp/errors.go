package mcp

import "errors"

// The kinds of failure a tool call can meet, for errors.Is: callers map
// them to error codes for sandbox code.
var (
	// ErrUnknownServer: runtime.hcl names no such server.
	ErrUnknownServer = errors.New("unknown MCP server")
	// ErrUnknownTool: the server does not list the tool.
	ErrUnknownTool = errors.New("unknown MCP tool")
	// ErrUnavailable: the server could not be started (missing command,
	// crash or silence at start-up, unreachable URL); calls fail at once
	// until the next retry after a backoff.
	ErrUnavailable = errors.New("MCP server unavailable")
	// ErrServerCrashed: the server exited (or its connection broke) while
	// the call was in flight; the next call restarts it.
	ErrServerCrashed = errors.New("MCP server exited during the call")
	// ErrToolTimeout: the call outlived its timeout (timeout or
	// tool_timeouts in runtime.hcl).
	ErrToolTimeout = errors.New("MCP tool call timed out")
)
