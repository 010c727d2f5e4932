package sdk

import (
	"context"
	"encoding/json"
)

// Host is the core's side of sandbox->host calls. The core implements it per
// session; a plugin receives it in SessionSpec.Host and relays the kernel's
// requests to it (the kernel package does this for you).
type Host interface {
	// CallTool calls tool on the MCP server named server.
	CallTool(ctx context.Context, req *ToolCall) (*ToolResult, error)
	// AskLLM asks the configured language model.
	AskLLM(ctx context.Context, req *LLMRequest) (*LLMResponse, error)
}

// ToolCall is a call of an MCP tool from sandbox code.
type ToolCall struct {
	Server    string          `json:"server"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
}

// ToolResult is what the tool returned.
type ToolResult struct {
	Result  json.RawMessage `json:"result"`
	IsError bool            `json:"is_error"`
}

// LLMRequest is an ask_llm call from sandbox code.
type LLMRequest struct {
	Prompt      string  `json:"prompt"`
	System      string  `json:"system,omitempty"`
	Model       string  `json:"model,omitempty"`
	MaxTokens   int     `json:"max_tokens,omitempty"`
	Temperature float64 `json:"temperature,omitempty"`
}

// LLMResponse is the model's answer.
type LLMResponse struct {
	Text             string `json:"text"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
}
