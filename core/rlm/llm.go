// Package rlm answers ask_llm the way Recursive Language Models work
// (Zhang, Kraska & Khattab, 2025): a large input lives in the sandbox as a
// variable, code slices it, and each slice goes to a model with
// ask_llm(question, context=slice) — or, with recursive=True, to a
// sub-agent that gets the slice as its own `context` in its own sandbox
// session, down to a depth limit. Every call is counted against the run's
// ask_llm budget, a sub-agent's tokens included.
package rlm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// ErrDepth is returned to sandbox code for a recursive call past the limit.
var ErrDepth = errors.New("ask_llm(recursive=True): depth limit reached")

// LLM is a bridge.LLM that adds context and recursion to Base.
type LLM struct {
	// Base makes one model call; nil means no model is configured.
	Base bridge.LLM
	// Manager opens the sub-agents' sessions; Model is their model.
	Manager *session.Manager
	Model   agent.Chatter
	// Template is the options of a sub-agent's run (MaxSteps, Budget,
	// ObservationLimit...); its SessionID, Input and Backend are set per call.
	Template agent.Options
	// MaxDepth bounds the nesting of recursive calls (0: none allowed).
	MaxDepth int
	// Listing, when set, gives a sub-agent's prompt its skills and tools
	// for its task.
	Listing func(task string) string
	Logger  hclog.Logger

	mu       sync.Mutex
	depth    map[string]int // sub-agent session → its depth (others are 0)
	fallback bridge.LLM
}

// SetFallback makes f answer the calls Base cannot, when no model is
// configured (an MCP client's sampling).
func (l *LLM) SetFallback(f bridge.LLM) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fallback = f
}

// base is the model that answers one call.
func (l *LLM) base() bridge.LLM {
	if l.Base != nil {
		return l.Base
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fallback
}

// Ask implements bridge.LLM.
func (l *LLM) Ask(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	base := l.base()
	if base == nil {
		return nil, bridge.ErrNoLLM
	}
	if !req.Recursive {
		if req.Context == "" {
			return base.Ask(ctx, req)
		}
		r := *req
		r.Prompt = withContext(req.Prompt, req.Context)
		r.Context = ""
		return base.Ask(ctx, &r)
	}
	return l.recurse(ctx, req)
}

// withContext puts a slice of the input after the question, fenced so that
// the model can tell where it ends.
func withContext(prompt, ctx string) string {
	return prompt + "\n\n<context>\n" + ctx + "\n</context>"
}

func (l *LLM) recurse(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	parent := bridge.SessionFrom(ctx)
	depth := l.depthOf(parent) + 1
	if limit := l.MaxDepth; depth > limit {
		return nil, fmt.Errorf("%w: this call would run at depth %d and the limit is %d (agent.max_depth in runtime.hcl); answer with ask_llm(question, context=piece) instead", ErrDepth, depth, limit)
	}
	if l.Manager == nil || l.Model == nil {
		return nil, errors.New("ask_llm(recursive=True): sub-agents need a model configured in runtime.hcl (llm { base_url, model })")
	}
	backend := ""
	if p, err := l.Manager.Get(parent); err == nil {
		backend = p.Backend
	}
	s, err := l.Manager.Open(ctx, session.Options{Backend: backend})
	if err != nil {
		return nil, fmt.Errorf("ask_llm(recursive=True): open the sub-agent's session: %w", err)
	}
	l.setDepth(s.ID, depth)
	defer func() {
		l.setDepth(s.ID, 0)
		if err := l.Manager.Close(context.WithoutCancel(ctx), s.ID); err != nil {
			l.log().Warn("closing a sub-agent's session", "session", s.ID, "error", err)
		}
	}()
	opts := l.Template
	opts.SessionID, opts.Backend, opts.History = s.ID, backend, nil
	opts.Input = &agent.Input{Value: req.Context, Source: "ask_llm from session " + parent}
	opts.MaxDepth = max(l.MaxDepth-depth, 0)
	if l.Listing != nil {
		opts.Listing = l.Listing(req.Prompt)
	}
	l.log().Info("recursive ask_llm", "parent", parent, "session", s.ID, "depth", depth, "context_bytes", len(req.Context))
	res, err := agent.Run(ctx, l.Manager, l.Model, req.Prompt, opts)
	if err != nil {
		return nil, fmt.Errorf("ask_llm(recursive=True) at depth %d: %w", depth, err)
	}
	if !res.Success {
		return nil, fmt.Errorf("ask_llm(recursive=True) at depth %d: the sub-agent (session %s) gave no answer: %s", depth, s.ID, res.Error)
	}
	return &sdk.LLMResponse{Text: res.Answer, PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens}, nil
}

func (l *LLM) depthOf(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.depth[id]
}

func (l *LLM) setDepth(id string, d int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d == 0 {
		delete(l.depth, id)
		return
	}
	if l.depth == nil {
		l.depth = map[string]int{}
	}
	l.depth[id] = d
}

func (l *LLM) log() hclog.Logger {
	if l.Logger == nil {
		return hclog.NewNullLogger()
	}
	return l.Logger
}
