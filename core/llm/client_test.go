package llm

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

func TestChatRetriesAndUsage(t *testing.T) {
	s := llmtest.New(llmtest.Reply{Status: 503}, llmtest.Reply{Status: 429}, llmtest.Reply{Content: "hi", PromptTokens: 3, CompletionTokens: 1})
	defer s.Close()
	c := &Client{BaseURL: s.BaseURL(), Model: "m"}
	r, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if err != nil || r.Content != "hi" || r.Usage.PromptTokens != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	if n := len(s.Requests()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestChatErrors(t *testing.T) {
	cases := map[string]struct {
		rep  llmtest.Reply
		want string
	}{
		"401":     {llmtest.Reply{Status: http.StatusUnauthorized}, "check api_key"},
		"404":     {llmtest.Reply{Status: http.StatusNotFound}, "check base_url"},
		"garbage": {llmtest.Reply{Raw: "<html>oops"}, "not a chat completion"},
		"empty":   {llmtest.Reply{Raw: `{"choices":[]}`}, "no choices"},
		"too big": {llmtest.Reply{Raw: `{"x":"` + strings.Repeat("a", MaxResponseBytes) + `"}`}, "larger than"},
	}
	for name, tc := range cases {
		s := llmtest.New(tc.rep)
		_, err := (&Client{BaseURL: s.BaseURL(), Model: "m"}).Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
		s.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	s := llmtest.New(llmtest.Reply{Delay: 2 * time.Second}, llmtest.Reply{Delay: 2 * time.Second})
	defer s.Close()
	_, err := (&Client{BaseURL: s.BaseURL(), Timeout: 100 * time.Millisecond, Retries: 1}).Chat(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("timeout: %v", err)
	}
	if _, err := (&Client{}).Chat(context.Background(), nil); err != ErrNotConfigured {
		t.Errorf("unconfigured: %v", err)
	}
}

func TestTenMegabyteReplyIsAccepted(t *testing.T) {
	big := strings.Repeat("x", 10<<20)
	s := llmtest.New(llmtest.Reply{Content: big})
	defer s.Close()
	r, err := (&Client{BaseURL: s.BaseURL()}).Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if err != nil || len(r.Content) != len(big) {
		t.Fatalf("10 MB reply: %v (%d bytes)", err, len(r.Content))
	}
}
