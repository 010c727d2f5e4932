package mcpserve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// defaultSamplingTokens is maxTokens of a sampling request when ask_llm
// gives none (the field is required by the protocol).
const defaultSamplingTokens = 1024

// samplingLLM answers ask_llm: with the configured model when there is
// one, otherwise through sampling/createMessage to the MCP client whose
// execute_python call runs the code, when that client declared sampling.
//
// The bridge does not say which session an ask_llm comes from, so the
// client is found among the calls running now: when code of several
// sampling clients runs at once the request is refused rather than sent
// to a client that did not run the code.
type samplingLLM struct {
	srv  *server.MCPServer
	base bridge.LLM

	mu     sync.Mutex
	active map[*activeCall]struct{}
}

type activeCall struct{ session server.ClientSession }

func newSamplingLLM(srv *server.MCPServer, base bridge.LLM) *samplingLLM {
	return &samplingLLM{srv: srv, base: base, active: map[*activeCall]struct{}{}}
}

// running records that an execute_python call of ctx's client runs code,
// if the client offers sampling; the returned func ends the record.
func (l *samplingLLM) running(ctx context.Context) func() {
	cs, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo)
	if !ok || cs.GetClientCapabilities().Sampling == nil {
		return func() {}
	}
	c := &activeCall{session: cs}
	l.mu.Lock()
	l.active[c] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.active, c)
		l.mu.Unlock()
	}
}

// client is the one sampling client running code now.
func (l *samplingLLM) client() (server.ClientSession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var found server.ClientSession
	for c := range l.active {
		switch {
		case found == nil:
			found = c.session
		case found.SessionID() != c.session.SessionID():
			return nil, errors.New("no language model configured, and code of several MCP clients is running: " +
				"ask_llm cannot tell whose sampling to use (set llm { base_url, model } in runtime.hcl)")
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w (and the MCP client running this code does not offer sampling)", bridge.ErrNoLLM)
	}
	return found, nil
}

// Ask implements bridge.LLM.
func (l *samplingLLM) Ask(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	if l.base != nil {
		return l.base.Ask(ctx, req)
	}
	cs, err := l.client()
	if err != nil {
		return nil, err
	}
	p := mcp.CreateMessageParams{
		Messages:     []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent(req.Prompt)}},
		SystemPrompt: req.System,
		MaxTokens:    req.MaxTokens,
		Temperature:  req.Temperature,
	}
	if p.MaxTokens <= 0 {
		p.MaxTokens = defaultSamplingTokens
	}
	if req.Model != "" {
		p.ModelPreferences = &mcp.ModelPreferences{Hints: []mcp.ModelHint{{Name: req.Model}}}
	}
	res, err := l.srv.RequestSampling(l.srv.WithContext(ctx, cs), mcp.CreateMessageRequest{CreateMessageParams: p})
	if err != nil {
		return nil, fmt.Errorf("ask_llm through the MCP client's sampling: %w", err)
	}
	return &sdk.LLMResponse{Text: samplingText(res.Content)}, nil
}

// samplingText is the text of a sampling result's content (one block or
// several).
func samplingText(content any) string {
	switch c := content.(type) {
	case mcp.TextContent:
		return c.Text
	case *mcp.TextContent:
		return c.Text
	case []mcp.Content:
		var parts []string
		for _, x := range c {
			parts = append(parts, samplingText(x))
		}
		return strings.Join(parts, "")
	case map[string]any:
		if t, ok := c["text"].(string); ok {
			return t
		}
	}
	return ""
}

// fallbackTaker is a bridge LLM that asks another when it has no model of
// its own (rlm.LLM).
type fallbackTaker interface{ SetFallback(bridge.LLM) }
