// Command mcpruntime-plugin-nomad is mcpruntime's Nomad backend: each
// session is an allocation on a Nomad cluster whose task runs the sdk's
// Python kernel. Started by the core as a go-plugin.
package main

import (
	"github.com/mcpruntime/mcpruntime/plugins/nomad/internal/backend"
	"github.com/mcpruntime/mcpruntime/sdk/plugin"
)

func main() {
	b := backend.New()
	plugin.Serve(b, plugin.WithLogger(b.Logger()))
}
