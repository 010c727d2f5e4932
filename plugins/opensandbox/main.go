// Command mcpruntime-plugin-opensandbox is mcpruntime's container backend:
// each session is a containerd container whose long-lived Python kernel
// keeps the session's variables. Started by the core as a go-plugin; run
// with a subcommand it manages the private containerd and the image:
//
//	mcpruntime-plugin-opensandbox daemon            start the private containerd (idempotent)
//	mcpruntime-plugin-opensandbox daemon-stop       stop it
//	mcpruntime-plugin-opensandbox image [flags]     build and import the Python image (idempotent)
package main

import (
	"os"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/command"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/sandbox"
	"github.com/mcpruntime/mcpruntime/sdk/plugin"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(command.Run(os.Args[1:]))
	}
	b := sandbox.New()
	plugin.Serve(b, plugin.WithLogger(b.Logger()))
}
