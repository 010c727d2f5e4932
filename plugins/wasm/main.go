// Command mcpruntime-plugin-wasm is mcpruntime's default sandbox backend:
// CPython compiled to WASI, run by wazero. It needs no daemon, no root and
// no network; sandbox code sees only the stdlib, its workspace and the
// session's read-only mounts.
//
// Started by the core it serves the plugin protocol. Started by itself with
// MCPRUNTIME_WASM_WORKER set it is a worker hosting one kernel.
package main

import (
	"os"

	"github.com/mcpruntime/mcpruntime/sdk/plugin"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
)

func main() {
	if _, ok := os.LookupEnv(worker.EnvVar); ok {
		os.Exit(worker.Main())
	}
	level := os.Getenv("MCPRUNTIME_PLUGIN_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "wasm", Level: hclog.LevelFromString(level), Output: os.Stderr, JSONFormat: true,
	})
	plugin.Serve(backend.New(logger), plugin.WithLogger(logger))
}
