package mcp

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// ErrorCode is the code sandbox code sees (ToolError.code) for an error of
// CallTool.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrUnknownServer):
		return sdk.ToolErrorUnknownServer
	case errors.Is(err, ErrUnknownTool):
		return sdk.ToolErrorUnknownTool
	case errors.Is(err, ErrUnavailable):
		return sdk.ToolErrorUnavailable
	case errors.Is(err, ErrServerCrashed):
		return sdk.ToolErrorCrashed
	case errors.Is(err, ErrToolTimeout), errors.Is(err, context.DeadlineExceeded):
		return sdk.ToolErrorTimeout
	}
	return sdk.ToolErrorFailed
}

// Coded returns the Hub as the bridge's tools, with every failure wrapped
// in an sdk.ToolError that carries its ErrorCode, so the code reaches
// sandbox code across the plugin boundary.
func (h *Hub) Coded() bridge.Tools { return codedTools{h} }

type codedTools struct{ h *Hub }

func (c codedTools) CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error) {
	res, err := c.h.CallTool(ctx, server, tool, args)
	if err != nil && sdk.ToolErrorCode(err) == "" {
		err = &sdk.ToolError{Code: ErrorCode(err), Err: err}
	}
	return res, err
}
