// Command mcpruntime-microvm-agent is the init process (PID 1) of the
// microVM backend's guests. It is built statically and packed into the
// guest initramfs by the image builder; it is not meant to run on a host.
package main

import (
	"fmt"
	"os"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/agent"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "mcpruntime-microvm-agent is the init process of a microVM guest; it does not run on a host")
		os.Exit(2)
	}
	agent.Main()
}
