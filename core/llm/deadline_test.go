package llm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

// TestChatDeadlineBoundsAHungEndpoint: an endpoint that never answers
// fails the call within its deadline, retries and backoff included (before
// the deadline, each of 1+Retries attempts took its whole timeout), and the
// error names the endpoint and what was tried.
func TestChatDeadlineBoundsAHungEndpoint(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hung.Close()
	defer close(release)
	const deadline = time.Second
	c := &Client{BaseURL: hung.URL + "/v1", Timeout: 400 * time.Millisecond, Deadline: deadline, Retries: 10}
	start := time.Now()
	_, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	took := time.Since(start)
	if took > deadline+2*time.Second {
		t.Errorf("a hung endpoint took %s to fail, deadline %s", took, deadline)
	}
	if err == nil {
		t.Fatal("Chat succeeded")
	}
	msg := err.Error()
	for _, want := range []string{hung.URL + "/v1/chat/completions", "attempt(s) over", "timeout, timeout", "deadline of 1s passed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// TestChatDeadlineNamesEachAttempt: what each attempt met is listed in
// order when the deadline ends the call during a backoff.
func TestChatDeadlineNamesEachAttempt(t *testing.T) {
	s := llmtest.New(llmtest.Reply{Delay: 5 * time.Second}, llmtest.Reply{Delay: 5 * time.Second}, llmtest.Reply{Status: 503}, llmtest.Reply{Content: "too late"})
	defer s.Close()
	// Attempts: timeout (0.2s), wait 0.25s, timeout (0.2s), wait 0.5s,
	// 503, wait 1s: the deadline passes during that wait.
	c := &Client{BaseURL: s.BaseURL(), Timeout: 200 * time.Millisecond, Deadline: 1500 * time.Millisecond}
	_, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if err == nil || !strings.Contains(err.Error(), "3 attempt(s) over 1.5s: timeout, timeout, 503; the call's deadline of 1.5s passed") {
		t.Fatalf("error %v does not list the attempts", err)
	}
}

// TestChatDeadlineDefault: without a deadline a call gets the default, or
// its attempt timeout when that is longer.
func TestChatDeadlineDefault(t *testing.T) {
	if _, d := (&Client{}).bounds(); d != DefaultDeadline {
		t.Errorf("default deadline %s", d)
	}
	if _, d := (&Client{Timeout: 10 * time.Minute}).bounds(); d != 10*time.Minute {
		t.Errorf("deadline with a 10m timeout: %s", d)
	}
}
