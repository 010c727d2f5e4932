package main

import (
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/session"
)

// recordReplay logs every execution of m to the workspace's replay log.
func recordReplay(a *app, m *session.Manager) {}

// replayCmd is `mcpruntime replay`.
func replayCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "replay", Short: "Inspect, resume and fork recorded sessions"}
}
