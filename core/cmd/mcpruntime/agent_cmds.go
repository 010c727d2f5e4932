package main

import (
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
)

// addAgentCommands adds run, skills and replay.
func addAgentCommands(root *cobra.Command, a *app) {}

// newLLM returns the configured model client, or nil when none is set.
func newLLM(cfg *config.Config, logger hclog.Logger) bridge.LLM { return nil }
