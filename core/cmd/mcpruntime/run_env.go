package main

import (
	"context"
	"slices"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// environment describes backend's sandbox for the system prompt: its
// configured limits, narrowed to those the backend declares it enforces,
// and what its capabilities say. Backends declare no network policy and
// no package list: the network is inferred from the isolation (a wasm
// guest has no sockets, a host process has the host's network) and the
// prompt tells the model to check packages before relying on them.
func (a *app) environment(ctx context.Context, m *session.Manager, backend string, budget bool) *agent.Environment {
	cfg := a.cfg
	lim := cfg.Sandbox(backend).Limits
	env := &agent.Environment{Backend: backend, StepTimeout: lim.Timeout, Memory: lim.MemoryBytes, Output: lim.OutputBytes,
		ObservationLimit: int(cfg.Agent.ObservationLimit), HostCalls: true}
	if t := cfg.Agent.StepTimeout; t > 0 && (env.StepTimeout == 0 || t < env.StepTimeout) {
		env.StepTimeout = t
	}
	if budget {
		env.LLMCalls, env.LLMTokens = cfg.Agent.AskLLMCalls, cfg.Agent.AskLLMTokens
	}
	info, err := m.BackendInfo(ctx, backend)
	if err != nil {
		a.log().Debug("the prompt does not describe the backend", "backend", backend, "error", err)
		return env
	}
	caps := info.Capabilities
	env.Isolation, env.HostCalls = string(caps.Isolation), caps.HostCalls
	switch caps.Isolation {
	case sdk.IsolationWasm:
		env.Network = "none"
	case sdk.IsolationProcess:
		env.Network = "available"
	}
	if len(caps.EnforcedLimits) > 0 {
		if !slices.Contains(caps.EnforcedLimits, sdk.LimitMemory) {
			env.Memory = 0
		}
		if !slices.Contains(caps.EnforcedLimits, sdk.LimitOutput) {
			env.Output = 0
		}
	}
	return env
}
