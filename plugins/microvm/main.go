// Command mcpruntime-plugin-microvm is the microVM sandbox backend: every
// session is a Linux microVM (QEMU microvm or Cloud Hypervisor) whose guest
// runs the sdk kernel. Without arguments it serves the plugin protocol;
// `image` builds the guest image and `doctor` checks the host.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/plugin"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "image":
			err = cli.Image(os.Args[2:])
		case "doctor":
			err = cli.Doctor(os.Args[2:])
		default:
			err = cli.ErrUsage
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "mcpruntime-plugin-microvm:", err)
			os.Exit(1)
		}
		return
	}
	level := os.Getenv("MCPRUNTIME_PLUGIN_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "microvm", Level: hclog.LevelFromString(level), Output: os.Stderr, JSONFormat: true})
	plugin.Serve(backend.New(backend.WithLogger(logger)), plugin.WithLogger(logger))
}
