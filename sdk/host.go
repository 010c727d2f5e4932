package sdk

import (
	"context"
	"encoding/json"
	"errors"
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
	// Result is the tool's structured content, else its text, as JSON; for
	// an error, the message as a JSON string.
	Result  json.RawMessage `json:"result"`
	IsError bool            `json:"is_error"`
	// Code says why a result with IsError failed (one of the ToolError*
	// codes); empty means ToolErrorReported.
	Code string `json:"code,omitempty"`
	// Content is the tool's content item by item, set when it holds more
	// than text (images, audio, resources): sandbox code then receives a
	// list of parts instead of Result.
	Content []ContentPart `json:"content,omitempty"`
}

// Kinds of ContentPart.
const (
	ContentText     = "text"
	ContentImage    = "image"
	ContentAudio    = "audio"
	ContentResource = "resource"
)

// ContentPart is one content item of a tool's result.
type ContentPart struct {
	// Type is one of the Content* kinds.
	Type string `json:"type"`
	// Text is a text part's text, or a text resource's contents.
	Text string `json:"text,omitempty"`
	// Data holds the bytes of an image, audio clip or binary resource
	// (base64 in JSON).
	Data []byte `json:"data,omitempty"`
	// MIMEType is the media type of Data or of a resource.
	MIMEType string `json:"mime_type,omitempty"`
	// URI names a resource.
	URI string `json:"uri,omitempty"`
}

// Codes of failed tool calls, as sandbox code sees them in ToolError.code.
const (
	// ToolErrorReported: the tool ran and reported an error (isError).
	ToolErrorReported = "tool_error"
	// ToolErrorTimeout: the tool did not answer within its timeout.
	ToolErrorTimeout = "timeout"
	// ToolErrorUnavailable: the tool's server could not be started.
	ToolErrorUnavailable = "unavailable"
	// ToolErrorCrashed: the server exited during the call.
	ToolErrorCrashed = "crashed"
	// ToolErrorUnknownTool: the server has no such tool.
	ToolErrorUnknownTool = "unknown_tool"
	// ToolErrorUnknownServer: no server of that name is configured.
	ToolErrorUnknownServer = "unknown_server"
	// ToolErrorRefused: the host refused the call (too many at once, or
	// host calls are not available).
	ToolErrorRefused = "refused"
	// ToolErrorFailed: any other failure.
	ToolErrorFailed = "error"
)

// ToolError is a tool call that failed without a result from the tool,
// with the code sandbox code receives. The core wraps its errors in one so
// the code survives the trip to the plugin.
type ToolError struct {
	Code string
	Err  error
}

// Error returns the underlying error's message.
func (e *ToolError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ToolError) Unwrap() error { return e.Err }

// ToolErrorCode is the Code of the first ToolError in err's chain, "" when
// there is none.
func ToolErrorCode(err error) string {
	var te *ToolError
	if errors.As(err, &te) {
		return te.Code
	}
	return ""
}

// LLMRequest is an ask_llm call from sandbox code.
type LLMRequest struct {
	Prompt      string  `json:"prompt"`
	System      string  `json:"system,omitempty"`
	Model       string  `json:"model,omitempty"`
	MaxTokens   int     `json:"max_tokens,omitempty"`
	Temperature float64 `json:"temperature,omitempty"`
	// Context is text the host appends to the prompt (sandbox code passes
	// a slice of a large input here instead of formatting it in).
	Context string `json:"context,omitempty"`
	// Recursive asks the host to answer with a sub-agent in its own
	// sandbox session rather than one model call.
	Recursive bool `json:"recursive,omitempty"`
}

// LLMResponse is the model's answer.
type LLMResponse struct {
	Text             string `json:"text"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
}
