// Command mcpruntime-opensandbox-init is the sandbox container's init
// (PID 1; see initproc), as a program of its own: the plugin binary can
// run as init too, but it links containerd's client and gRPC, whose
// package initialisation alone costs ~10 ms of every cold container start.
// This one links only what init needs and starts in ~1 ms.
//
//	mcpruntime-opensandbox-init init PROGRAM [ARG...]
//	mcpruntime-opensandbox-init pause
package main

import (
	"fmt"
	"os"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/initproc"
)

func main() {
	switch {
	case len(os.Args) >= 2 && os.Args[1] == "init":
		os.Exit(initproc.Run(os.Args[2:]))
	case len(os.Args) == 2 && os.Args[1] == "pause":
		os.Exit(initproc.Pause())
	}
	fmt.Fprintln(os.Stderr, "usage: mcpruntime-opensandbox-init init PROGRAM [ARG...] | pause")
	os.Exit(2)
}
