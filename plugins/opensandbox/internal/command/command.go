// Package command implements the plugin binary's maintenance subcommands
// (run by people and the Makefile, never by the core).
package command

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/initproc"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/sandbox"
)

const usage = `usage: mcpruntime-plugin-opensandbox daemon | daemon-stop | image [flags]
  init CMD...   (inside a sandbox container) run CMD as the kernel under a reaping init
  pause         (inside the anchor container) wait for SIGTERM
  daemon        start the private containerd unless it already answers
  daemon-stop   stop the private containerd
  image         build the Python image from Debian packages and import it
                (does nothing when the installed package versions did not change)`

// Run executes a subcommand and returns the process exit status.
func Run(args []string) int {
	switch args[0] {
	case "init":
		return initproc.Run(args[1:])
	case "pause":
		return initproc.Pause()
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "opensandbox", Output: os.Stderr, Level: hclog.Info})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "daemon":
		err = daemon.Ensure(ctx, daemon.DefaultPaths(), log)
		if err == nil {
			fmt.Fprintln(os.Stderr, "private containerd answers at", daemon.DefaultAddress)
		}
	case "daemon-stop":
		err = daemon.Stop(daemon.DefaultPaths())
	case "image":
		err = image(ctx, args[1:], log)
	default:
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	return 0
}

func image(ctx context.Context, args []string, log hclog.Logger) error {
	def := sandbox.DefaultSettings()
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	address := fs.String("address", def.Address, "containerd socket")
	namespace := fs.String("namespace", def.Namespace, "containerd namespace")
	name := fs.String("name", def.Image, "image name")
	packages := fs.String("packages", strings.Join(def.Packages, ","), "extra Debian packages, comma separated")
	workdir := fs.String("workdir", def.BuildDir, "package cache and build directory")
	rebuild := fs.Bool("rebuild", true, "re-resolve package versions and rebuild when any changed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := def
	s.Address, s.Namespace, s.Image, s.BuildDir = *address, *namespace, *name, *workdir
	s.Packages = nil
	for _, p := range strings.Split(*packages, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.Packages = append(s.Packages, p)
		}
	}
	if *address == daemon.DefaultAddress {
		if err := daemon.Ensure(ctx, daemon.DefaultPaths(), log); err != nil {
			return err
		}
	}
	r, err := sandbox.EnsureImage(ctx, s, *rebuild, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image %s ready in namespace %s (rootfs %s, built now: %v)\n", r.Image.Name(), s.Namespace, r.ChainID, r.Built)
	return nil
}
