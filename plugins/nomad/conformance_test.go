package main

import (
	"context"
	"testing"

	"github.com/mcpruntime/mcpruntime/plugins/nomad/internal/backend"
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

// conformanceChecks are the suite's checks but the known gaps.
func conformanceChecks(t *testing.T) []string {
	var names []string
	for _, c := range sandboxtest.Checks() {
		if why, gap := knownGaps[c.Name]; gap {
			t.Logf("not run: %s (known gap: %s)", c.Name, why)
			continue
		}
		names = append(names, c.Name)
	}
	return names
}

// TestConformanceInProcess runs the suite against the backend served in
// the test binary, so that the race detector sees the plugin's code (make
// test runs it with -race).
func TestConformanceInProcess(t *testing.T) {
	requireCluster(t)
	sandboxtest.RunBackend(t, backend.New(), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(configJSON(nil)), sandboxtest.WithChecks(conformanceChecks(t)...))
}

// TestConformance runs the sdk's conformance suite against the plugin
// binary, as the core would launch it, with a warm pool, on the private
// 3-agent cluster.
func TestConformance(t *testing.T) {
	requireCluster(t)
	sandboxtest.Run(t, buildPlugin(t), sandboxtest.WithPoolSize(2), sandboxtest.WithConfig(configJSON(nil)), sandboxtest.WithChecks(conformanceChecks(t)...))
}

// TestKnownGapsStillFail runs each known gap's check and requires it to
// fail: a gap that closes must leave knownGaps (and the README), and one
// that fails for another reason shows here.
func TestKnownGapsStillFail(t *testing.T) {
	requireCluster(t)
	for name := range knownGaps {
		results, err := sandboxtest.Report(context.Background(), buildPlugin(t), nil, sandboxtest.WithPoolSize(1),
			sandboxtest.WithConfig(configJSON(nil)), sandboxtest.WithChecks(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if r.Name != name {
				continue
			}
			if r.Passed || r.Skipped {
				t.Fatalf("known gap %s now passes (skipped=%v): remove it from knownGaps and the README", name, r.Skipped)
			}
			t.Logf("known gap %s fails as documented: %s", name, r.Error)
		}
	}
}
