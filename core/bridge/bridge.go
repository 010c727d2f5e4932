// Package bridge is the host side of sandbox callbacks: it answers the
// ask_llm and MCP tool calls that sandbox code makes, per session, and
// counts what they cost.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// LLM answers ask_llm.
type LLM interface {
	Ask(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error)
}

// Tools calls MCP tools.
type Tools interface {
	CallTool(ctx context.Context, server, tool string, args json.RawMessage) (*sdk.ToolResult, error)
}

// ErrNoLLM is returned to sandbox code when no model is configured.
var ErrNoLLM = errors.New("no language model configured: set llm { base_url, model } in runtime.hcl or OPENAI_BASE_URL")

// NoServer is the error for a tool call to a server runtime.hcl does not
// configure.
func NoServer(server string) error {
	return fmt.Errorf("no MCP server named %q is configured (add mcp_server %q { command = [...] } to runtime.hcl)", server, server)
}

// Bridge hands out a Host per session.
type Bridge struct {
	LLM   LLM
	Tools Tools

	mu    sync.Mutex
	usage map[string]*Usage
	// budgets are the ask_llm budgets of the sessions agent runs use.
	budgets map[string]*budgetState
}

// Usage is what a session's host calls consumed.
type Usage struct {
	LLMCalls         int   `json:"llm_calls"`
	ToolCalls        int   `json:"tool_calls"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// ForSession returns the Host for session id.
func (b *Bridge) ForSession(id string) sdk.Host { return &sessionHost{b: b, id: id} }

// Usage returns (a copy of) what session id has consumed so far.
func (b *Bridge) Usage(id string) Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.usage[id]; u != nil {
		return *u
	}
	return Usage{}
}

func (b *Bridge) add(id string, f func(*Usage)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usage == nil {
		b.usage = map[string]*Usage{}
	}
	u := b.usage[id]
	if u == nil {
		u = &Usage{}
		b.usage[id] = u
	}
	f(u)
}

type sessionHost struct {
	b  *Bridge
	id string
}

func (h *sessionHost) AskLLM(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	if h.b.LLM == nil {
		return nil, ErrNoLLM
	}
	if err := h.b.reserve(h.id); err != nil {
		return nil, err
	}
	resp, err := h.b.LLM.Ask(WithSession(ctx, h.id), req)
	if err != nil {
		return nil, err
	}
	h.b.spend(h.id, resp.PromptTokens+resp.CompletionTokens)
	h.b.add(h.id, func(u *Usage) {
		u.LLMCalls++
		u.PromptTokens += resp.PromptTokens
		u.CompletionTokens += resp.CompletionTokens
	})
	return resp, nil
}

func (h *sessionHost) CallTool(ctx context.Context, call *sdk.ToolCall) (*sdk.ToolResult, error) {
	if h.b.Tools == nil {
		return nil, NoServer(call.Server)
	}
	h.b.add(h.id, func(u *Usage) { u.ToolCalls++ })
	return h.b.Tools.CallTool(WithSession(ctx, h.id), call.Server, call.Tool, call.Arguments)
}
