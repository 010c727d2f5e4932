// Package llm is a small typed client for OpenAI-compatible Chat
// Completions endpoints (OpenAI, Ollama, vLLM, LiteLLM): retries with
// backoff on 429 and 5xx, clear errors on the rest, token usage counted.
package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// MaxResponseBytes bounds a response body; a larger reply is an error.
const MaxResponseBytes = 16 << 20

// Defaults of Client's bounds.
const (
	DefaultTimeout  = 120 * time.Second
	DefaultDeadline = 3 * time.Minute
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Images go with the text to a model that takes them (llm.vision): the
	// message is then sent as a list of content parts.
	Images []Image `json:"-"`
}

// Image is a picture in a message.
type Image struct {
	MIME string
	Data []byte
}

// MarshalJSON sends content as a string, or as text and image_url parts
// (data URLs) when the message has images.
func (m Message) MarshalJSON() ([]byte, error) {
	if len(m.Images) == 0 {
		return json.Marshal(struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}{m.Role, m.Content})
	}
	type imageURL struct {
		URL string `json:"url"`
	}
	type part struct {
		Type     string    `json:"type"`
		Text     string    `json:"text,omitempty"`
		ImageURL *imageURL `json:"image_url,omitempty"`
	}
	parts := []part{{Type: "text", Text: m.Content}}
	for _, img := range m.Images {
		url := "data:" + img.MIME + ";base64," + base64.StdEncoding.EncodeToString(img.Data)
		parts = append(parts, part{Type: "image_url", ImageURL: &imageURL{URL: url}})
	}
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content []part `json:"content"`
	}{m.Role, parts})
}

// Usage is what a call cost.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Add accumulates u2 into u.
func (u *Usage) Add(u2 Usage) {
	u.PromptTokens += u2.PromptTokens
	u.CompletionTokens += u2.CompletionTokens
	u.TotalTokens += u2.TotalTokens
}

// Response is a completion.
type Response struct {
	Content      string
	FinishReason string
	Model        string
	Usage        Usage
}

// Client calls one endpoint with one default model.
type Client struct {
	BaseURL     string
	APIKey      string
	Model       string
	Temperature float64
	MaxTokens   int
	// Timeout bounds each attempt (default DefaultTimeout).
	Timeout time.Duration
	// Deadline bounds a whole Chat call, its attempts and the waits
	// between them: a hung endpoint fails the call within it (default
	// DefaultDeadline, or Timeout when that is longer).
	Deadline time.Duration
	// Retries on 429/5xx/transport errors and timeouts (default 3), as
	// long as the deadline allows.
	Retries int
	HTTP    *http.Client
	Logger  hclog.Logger
}

// ErrNotConfigured means no base URL is set.
var ErrNotConfigured = errors.New("llm: no endpoint configured (set llm { base_url } in runtime.hcl or OPENAI_BASE_URL)")

// Option adjusts one call.
type Option func(*chatRequest)

// WithModel overrides the model.
func WithModel(m string) Option { return func(r *chatRequest) { r.Model = m } }

// WithMaxTokens caps the reply.
func WithMaxTokens(n int) Option { return func(r *chatRequest) { r.MaxTokens = n } }

// WithTemperature sets the sampling temperature.
func WithTemperature(t float64) Option { return func(r *chatRequest) { r.Temperature = &t } }

type chatRequest struct {
	Model       string    `json:"model"`
	Messages    []Message `json:"messages"`
	Temperature *float64  `json:"temperature,omitempty"`
	MaxTokens   int       `json:"max_tokens,omitempty"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message      Message `json:"message"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage Usage `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Chat sends messages and returns the first choice.
func (c *Client) Chat(ctx context.Context, msgs []Message, opts ...Option) (*Response, error) {
	if c.BaseURL == "" {
		return nil, ErrNotConfigured
	}
	req := chatRequest{Model: c.Model, Messages: msgs, MaxTokens: c.MaxTokens}
	if c.Temperature != 0 {
		t := c.Temperature
		req.Temperature = &t
	}
	for _, o := range opts {
		o(&req)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("llm: encode request: %w", err)
	}
	retries := c.Retries
	if retries <= 0 {
		retries = 3
	}
	timeout, deadline := c.bounds()
	dctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	var tried []string
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			wait := time.Duration(250<<(attempt-1)) * time.Millisecond
			c.log().Warn("llm call failed; retrying", "attempt", attempt, "wait", wait, "error", last)
			t := time.NewTimer(wait)
			select {
			case <-dctx.Done():
			case <-t.C:
			}
			t.Stop()
			if dctx.Err() != nil {
				break
			}
		}
		resp, retry, outcome, err := c.once(dctx, body, timeout)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("llm: call to %s: %w", c.url(), ctx.Err())
		}
		last = err
		tried = append(tried, outcome)
		if !retry {
			return nil, err
		}
		if dctx.Err() != nil {
			break
		}
	}
	why := "no retries left"
	if dctx.Err() != nil {
		why = fmt.Sprintf("the call's deadline of %s passed (llm { deadline } in runtime.hcl)", deadline)
	}
	return nil, fmt.Errorf("llm: no answer from %s: %d attempt(s) over %s: %s; %s. Last error: %w",
		c.url(), len(tried), roundElapsed(time.Since(start)), strings.Join(tried, ", "), why, last)
}

// bounds are the per-attempt timeout and the whole call's deadline.
func (c *Client) bounds() (timeout, deadline time.Duration) {
	timeout = c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline = c.Deadline
	if deadline <= 0 {
		deadline = max(DefaultDeadline, timeout)
	}
	return timeout, deadline
}

func (c *Client) url() string { return strings.TrimRight(c.BaseURL, "/") + "/chat/completions" }

// roundElapsed keeps a duration readable in a message.
func roundElapsed(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func (c *Client) log() hclog.Logger {
	if c.Logger == nil {
		return hclog.NewNullLogger()
	}
	return c.Logger
}

// once makes one attempt of at most timeout; retry says whether another
// may succeed, outcome names what happened in a word or two ("timeout",
// "503", "connect: connection refused") for the message of a call that
// gives up.
func (c *Client) once(ctx context.Context, body []byte, timeout time.Duration) (_ *Response, retry bool, outcome string, _ error) {
	resp, retry, err := c.attempt(ctx, body, timeout)
	return resp, retry, outcomeOf(err), err
}

// attemptStatus is an attempt's HTTP status, for outcomeOf.
type attemptStatus struct {
	code int
	err  error
}

func (e *attemptStatus) Error() string { return e.err.Error() }
func (e *attemptStatus) Unwrap() error { return e.err }

// errTimedOut marks an attempt that got no answer in time.
var errTimedOut = errors.New("timeout")

func outcomeOf(err error) string {
	var st *attemptStatus
	var op *net.OpError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errTimedOut) || errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &st):
		return strconv.Itoa(st.code)
	case errors.As(err, &op):
		return op.Err.Error()
	default:
		return "error"
	}
}

func (c *Client) attempt(ctx context.Context, body []byte, timeout time.Duration) (*Response, bool, error) {
	began := time.Now()
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := c.url()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("llm: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		if actx.Err() != nil {
			// The attempt's timeout, or the call's deadline cutting it short.
			return nil, true, fmt.Errorf("llm: no answer from %s within %s: %w", url, roundElapsed(time.Since(began)), errTimedOut)
		}
		return nil, true, fmt.Errorf("llm: %w", err)
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, true, fmt.Errorf("llm: reading response: %w", err)
	}
	if len(raw) > MaxResponseBytes {
		return nil, false, fmt.Errorf("llm: response larger than %d MiB", MaxResponseBytes>>20)
	}
	switch code := hresp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return nil, false, fmt.Errorf("llm: %s from %s: check api_key / OPENAI_API_KEY", hresp.Status, url)
	case code == http.StatusNotFound:
		return nil, false, fmt.Errorf("llm: %s from %s: check base_url (it usually ends in /v1) and model %q", hresp.Status, url, c.Model)
	case code == http.StatusTooManyRequests || code >= 500:
		return nil, true, &attemptStatus{code: code, err: fmt.Errorf("llm: %s from %s: %s", hresp.Status, url, snippet(raw))}
	case code >= 300:
		return nil, false, fmt.Errorf("llm: %s from %s: %s", hresp.Status, url, snippet(raw))
	}
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, false, fmt.Errorf("llm: response is not a chat completion (%v): %s", err, snippet(raw))
	}
	if cr.Error != nil {
		return nil, false, fmt.Errorf("llm: endpoint error: %s", cr.Error.Message)
	}
	if len(cr.Choices) == 0 {
		return nil, false, fmt.Errorf("llm: response has no choices: %s", snippet(raw))
	}
	ch := cr.Choices[0]
	return &Response{Content: ch.Message.Content, FinishReason: ch.FinishReason, Model: cr.Model, Usage: cr.Usage}, false, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Ask answers ask_llm from sandbox code (it implements bridge.LLM).
func (c *Client) Ask(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	var msgs []Message
	if req.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: req.System})
	}
	msgs = append(msgs, Message{Role: "user", Content: req.Prompt})
	var opts []Option
	if req.Model != "" {
		opts = append(opts, WithModel(req.Model))
	}
	if req.MaxTokens > 0 {
		opts = append(opts, WithMaxTokens(req.MaxTokens))
	}
	if req.Temperature != 0 {
		opts = append(opts, WithTemperature(req.Temperature))
	}
	resp, err := c.Chat(ctx, msgs, opts...)
	if err != nil {
		return nil, err
	}
	return &sdk.LLMResponse{Text: resp.Content, PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens}, nil
}
