package main

import (
	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/builtins"
	"github.com/mcpruntime/mcpruntime/core/catalog"
	"github.com/mcpruntime/mcpruntime/core/mcp"
	"github.com/mcpruntime/mcpruntime/core/rlm"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// wireBuiltins gives m's sandbox code the runtime's own helpers (server
// "mcpruntime": search_skills, search_tools, describe, a run's input) in
// front of hub's MCP servers, and ask_llm's context and recursive
// sub-agents in front of the configured model.
func (a *app) wireBuiltins(m *session.Manager, hub *mcp.Hub) {
	cfg, br := a.cfg, m.Bridge()
	br.Tools = &builtins.Host{Catalog: a.catalog(hub), Inputs: &a.inputs, Next: br.Tools}
	rl := &rlm.LLM{Base: br.LLM, Manager: m, MaxDepth: cfg.Agent.MaxDepth, Logger: a.log().Named("rlm"),
		Listing: func(task string) string { return a.listing(hub, task) }}
	if c := llmClient(cfg, a.log()); c != nil {
		rl.Model = c
	}
	rl.Template = agent.Options{MaxSteps: cfg.Agent.MaxSteps, StepTimeout: cfg.Agent.StepTimeout, Budget: cfg.Agent.Budget,
		ObservationLimit: int(cfg.Agent.ObservationLimit), Inputs: &a.inputs, Logger: a.log()}
	br.LLM = rl
}

// catalog is the skills and hub's tools, ranked for prompts and searches.
func (a *app) catalog(hub *mcp.Hub) *catalog.Catalog {
	return catalog.New(&skills.Registry{Dir: a.cfg.Skills.Dir}, hub)
}

// listing is the skills-and-tools part of a system prompt for task, within
// agent.listing_budget, the most relevant first.
func (a *app) listing(hub *mcp.Hub, task string) string {
	p, err := a.catalog(hub).Prompt(task, a.cfg.Agent.ListingBudget)
	if err != nil {
		a.log().Warn("skills and tools are not listed in the prompt", "error", err)
		return ""
	}
	return p
}

// promptLister lists skills and tools for an MCP client's instructions
// (no task: the most recent skills, tools in order), within the budget.
type promptLister struct {
	a   *app
	hub *mcp.Hub
}

// Listing implements mcpserve.Lister.
func (l promptLister) Listing() string { return l.a.listing(l.hub, "") }
