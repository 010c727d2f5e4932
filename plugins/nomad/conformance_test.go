package main

import (
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// TestConformance runs the sdk's conformance suite against the plugin
// binary, as the core would launch it, with a warm pool, on the private
// 3-agent cluster.
func TestConformance(t *testing.T) {
	requireCluster(t)
	sandboxtest.Run(t, buildPlugin(t), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(configJSON(nil)))
}
