package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

type fixedLLM struct{}

func (fixedLLM) Ask(_ context.Context, r *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return &sdk.LLMResponse{Text: "ok:" + r.Prompt, PromptTokens: 7, CompletionTokens: 3}, nil
}

func TestUsageIsCountedPerSession(t *testing.T) {
	b := &Bridge{LLM: fixedLLM{}}
	a, c := b.ForSession("a"), b.ForSession("c")
	for range 2 {
		if _, err := a.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	c.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"})
	if u := b.Usage("a"); u.LLMCalls != 2 || u.PromptTokens != 14 || u.CompletionTokens != 6 {
		t.Fatalf("usage a %+v", u)
	}
	if u := b.Usage("c"); u.LLMCalls != 1 {
		t.Fatalf("usage c %+v", u)
	}
}

func TestUnconfiguredCallsExplainThemselves(t *testing.T) {
	h := (&Bridge{}).ForSession("s")
	if _, err := h.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"}); !errors.Is(err, ErrNoLLM) {
		t.Fatalf("ask without llm: %v", err)
	}
	_, err := h.CallTool(context.Background(), &sdk.ToolCall{Server: "files", Tool: "read"})
	if err == nil || !strings.Contains(err.Error(), `mcp_server "files"`) {
		t.Fatalf("tool without server: %v", err)
	}
}
