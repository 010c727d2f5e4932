// Package llmtest is a scripted OpenAI-compatible Chat Completions server:
// real HTTP on loopback, replies taken from a script in order, every request
// recorded. Tests and examples use it so that nothing calls the internet.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Reply is one scripted answer.
type Reply struct {
	// Content is the assistant message (when Status is 0 or 200).
	Content string `json:"content"`
	// Status, if set and not 200, is returned with an error body.
	Status int `json:"status,omitempty"`
	// Raw, if set, is sent as the body verbatim (garbage, huge replies).
	Raw string `json:"raw,omitempty"`
	// Delay before answering.
	Delay time.Duration `json:"delay,omitempty"`
	// PromptTokens and CompletionTokens are reported as usage.
	PromptTokens     int64 `json:"prompt_tokens,omitempty"`
	CompletionTokens int64 `json:"completion_tokens,omitempty"`
}

// Request is a recorded request body.
type Request struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
}

// Message is a recorded chat message. Content is its text; a message
// whose content is a list of parts (text and images) has the text parts
// joined in Content and the images' URLs in Images.
type Message struct {
	Role    string   `json:"role"`
	Content string   `json:"content"`
	Images  []string `json:"images,omitempty"`
}

// UnmarshalJSON accepts a content string or a list of content parts.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role = raw.Role
	if len(raw.Content) == 0 || raw.Content[0] != '[' {
		return json.Unmarshal(raw.Content, &m.Content)
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw.Content, &parts); err != nil {
		return err
	}
	var text []string
	for _, p := range parts {
		switch p.Type {
		case "text":
			text = append(text, p.Text)
		case "image_url":
			m.Images = append(m.Images, p.ImageURL.URL)
		default:
			return fmt.Errorf("unknown content part type %q", p.Type)
		}
	}
	m.Content = strings.Join(text, "\n")
	return nil
}

// Server serves the script.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	script   []Reply
	requests []Request
	// Answer, if set, answers requests after the script ran out (e.g. to
	// serve ask_llm calls from sandbox code).
	Answer func(Request) string
}

// New starts a server replying with script in order. Its URL + "/v1" is the
// base_url to configure.
func New(script ...Reply) *Server {
	s := &Server{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Listen is New on a chosen address (e.g. "127.0.0.1:0"), for use outside
// tests, such as the examples.
func Listen(addr string, script ...Reply) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{script: script}
	s.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.Server.Start()
	return s, nil
}

// BaseURL is what runtime.hcl's llm.base_url should be.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Requests returns what the server received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	var rep Reply
	var ok bool
	if len(s.script) > 0 {
		rep, s.script, ok = s.script[0], s.script[1:], true
	}
	answer := s.Answer
	s.mu.Unlock()
	if !ok {
		if answer == nil {
			http.Error(w, `{"error":{"message":"script exhausted"}}`, http.StatusInternalServerError)
			return
		}
		rep = Reply{Content: answer(req)}
	}
	if rep.Delay > 0 {
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.Status != 0 && rep.Status != http.StatusOK {
		w.WriteHeader(rep.Status)
		fmt.Fprintf(w, `{"error":{"message":"scripted status %d"}}`, rep.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.Raw != "" {
		fmt.Fprint(w, rep.Raw)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "scripted", "object": "chat.completion", "model": req.Model,
		"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": rep.Content}}},
		"usage":   map[string]int64{"prompt_tokens": rep.PromptTokens, "completion_tokens": rep.CompletionTokens, "total_tokens": rep.PromptTokens + rep.CompletionTokens},
	})
}
