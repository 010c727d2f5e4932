package config

import (
	"fmt"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Defaults of the agent block.
const (
	// DefaultAskLLMCalls bounds the ask_llm calls of one run: a loop in
	// sandbox code must not spend without end.
	DefaultAskLLMCalls = 100
	// DefaultMaxDepth bounds recursive ask_llm: a sub-agent may start one
	// more level, not more.
	DefaultMaxDepth = 2
	// DefaultListingBudget is about 1,500 tokens of skills and tools.
	DefaultListingBudget = 6000
	// DefaultInputLimit bounds a run's input: it crosses the kernel
	// channel (64 MiB frames) as JSON.
	DefaultInputLimit = 32 << 20
)

// buildAgent decodes the agent block, defaults applied.
func buildAgent(ctx *hcl.EvalContext, a *agentBlock, diags *hcl.Diagnostics) Agent {
	out := Agent{MaxSteps: 10, StepTimeout: 0, Budget: 10 * time.Minute, ObservationLimit: 16 << 10, AskLLMCalls: DefaultAskLLMCalls,
		MaxDepth: DefaultMaxDepth, ListingBudget: DefaultListingBudget, InputLimit: DefaultInputLimit}
	if a == nil {
		return out
	}
	if a.MaxSteps != nil {
		out.MaxSteps = *a.MaxSteps
	}
	out.StepTimeout = duration(ctx, a.StepTimeout, out.StepTimeout, diags)
	out.Budget = duration(ctx, a.Budget, out.Budget, diags)
	out.ObservationLimit = size(ctx, a.ObservationLimit, out.ObservationLimit, diags)
	out.AskLLMCalls = int(count(ctx, a.AskLLMCalls, "ask_llm_calls", int64(out.AskLLMCalls), diags))
	out.AskLLMTokens = count(ctx, a.AskLLMTokens, "ask_llm_tokens", out.AskLLMTokens, diags)
	out.MaxDepth = int(count(ctx, a.MaxDepth, "max_depth", int64(out.MaxDepth), diags))
	out.ListingBudget = int(count(ctx, a.ListingBudget, "listing_budget", int64(out.ListingBudget), diags))
	out.InputLimit = size(ctx, a.InputLimit, out.InputLimit, diags)
	return out
}

// count evaluates a whole number of at least 0 (0: no bound), or returns
// def when the attribute is not set.
func count(ctx *hcl.EvalContext, expr hcl.Expression, name string, def int64, diags *hcl.Diagnostics) int64 {
	if !present(expr) {
		return def
	}
	v, d := expr.Value(ctx)
	*diags = append(*diags, d...)
	if d.HasErrors() || v.IsNull() {
		return def
	}
	bad := func() int64 {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: fmt.Sprintf("%s must be a whole number of at least 0 (0 means no bound), like 100.", name), Subject: expr.Range().Ptr()})
		return def
	}
	if v.Type() != cty.Number {
		return bad()
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact || n < 0 || n > 1<<40 {
		return bad()
	}
	return n
}
