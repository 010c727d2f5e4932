// Package cli holds the plugin binary's command-line modes (`image`,
// `doctor`), used by `make image` and by operators; the core runs the
// binary without arguments and gets the go-plugin server instead.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
)

// AgentName is the guest agent binary, installed next to the plugin.
const AgentName = "mcpruntime-microvm-agent"

// DefaultImageDir is where images are cached unless configured:
// $MCPRUNTIME_MICROVM_IMAGES, else the user's cache directory.
func DefaultImageDir() string {
	if d := os.Getenv("MCPRUNTIME_MICROVM_IMAGES"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mcpruntime", "microvm")
	}
	return filepath.Join(os.TempDir(), "mcpruntime-microvm")
}

// FindAgent locates the guest agent: an explicit path, else next to the
// running executable.
func FindAgent(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("guest agent %s: %w", explicit, err)
		}
		return explicit, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), AgentName)
	if _, err := os.Stat(p); err != nil {
		if lp, lerr := exec.LookPath(AgentName); lerr == nil {
			return lp, nil
		}
		return "", fmt.Errorf("guest agent %s not found next to %s (build both with `make build`): %w", AgentName, self, err)
	}
	return p, nil
}

// Image builds (or finds cached) the guest image and prints its paths.
func Image(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	dir := fs.String("dir", DefaultImageDir(), "image cache directory")
	agent := fs.String("agent", "", "guest agent binary (default: next to this program)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := FindAgent(*agent)
	if err != nil {
		return err
	}
	start := time.Now()
	log := hclog.New(&hclog.LoggerOptions{Name: "image", Output: os.Stderr})
	im, err := image.Ensure(context.Background(), image.Options{Dir: *dir, Agent: ap, Logger: log})
	if err != nil {
		return err
	}
	fmt.Printf("kernel     %s (%s)\ninitramfs  %s\nrootfs     %s\nkey        %s\nready in   %s\n",
		im.Kernel, im.Release, im.Initramfs, im.Rootfs, im.Key, time.Since(start).Round(time.Millisecond))
	return nil
}

// ErrUsage is returned for unknown subcommands.
var ErrUsage = errors.New("usage: mcpruntime-plugin-microvm [image|doctor] (no arguments: serve as a plugin)")
