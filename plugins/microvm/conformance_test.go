package main

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// TestConformance runs the sdk's conformance suite against the built
// plugin binary, under whatever accelerator the host offers (TCG here).
func TestConformance(t *testing.T) {
	needQEMU(t)
	bin := pluginBinary(t)
	opts := []sandboxtest.Option{
		sandboxtest.WithPoolSize(1),
		sandboxtest.WithExecTimeout(120 * time.Second),
		sandboxtest.WithStartTimeout(300 * time.Second),
	}
	if os.Getenv("MICROVM_TEST_LOG") != "" {
		opts = append(opts, sandboxtest.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr})),
			sandboxtest.WithEnv("MCPRUNTIME_PLUGIN_LOG_LEVEL=debug"))
	}
	sandboxtest.Run(t, bin, opts...)
}
