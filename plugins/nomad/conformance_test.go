package main

import (
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// knownGaps are conformance checks this backend does not pass yet, with
// the reason (see the README): each is listed, never silently skipped.
var knownGaps = map[string]string{
	// The workspace is a copy in the allocation, on the node's disk: a
	// write that fits there but not in the host's directory fails when it
	// is copied back (the result says ENOSPC), not in the code.
	"disk_full": "the allocation's copy of the workspace is not bounded by the host directory's free space",
}

// TestConformance runs the sdk's conformance suite against the plugin
// binary, as the core would launch it, with a warm pool, on the private
// 3-agent cluster.
func TestConformance(t *testing.T) {
	requireCluster(t)
	var names []string
	for _, c := range sandboxtest.Checks() {
		if why, gap := knownGaps[c.Name]; gap {
			t.Logf("not run: %s (known gap: %s)", c.Name, why)
			continue
		}
		names = append(names, c.Name)
	}
	sandboxtest.Run(t, buildPlugin(t), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(configJSON(nil)), sandboxtest.WithChecks(names...))
}
