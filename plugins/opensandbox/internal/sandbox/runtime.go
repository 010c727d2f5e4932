package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
)

// runcShim is containerd's shim for runc-compatible runtimes (runc, crun).
const runcShim = "io.containerd.runc.v2"

// ociRuntime is the resolved `runtime` setting: the containerd shim and,
// for the runc shim, which runtime binary it drives.
type ociRuntime struct {
	shim   string
	binary string // "" for the shim's default (runc)
	name   string // for logs and errors
}

// options are the shim's per-container options: the runtime binary and a
// private state root (so nothing of ours lands in the system runc's).
func (r ociRuntime) options(root string) any {
	if r.shim != runcShim {
		return nil
	}
	return &options.Options{BinaryName: r.binary, Root: filepath.Join(root, r.name)}
}

// resolveRuntime turns the `runtime` setting into a runtime.
//
//   - "runc": the shim's runc.
//   - "crun": crun through the same shim. Container creation is the largest
//     part of a cold session start, and crun (C) does it faster than runc
//     (Go, re-executing itself as `runc init`); the bench measures both.
//   - "auto" (default): crun where it is installed and accepts the host's
//     cgroup layout, runc otherwise; why is logged.
//   - anything else: a containerd shim name, used as is.
func resolveRuntime(setting string) (ociRuntime, string, error) {
	switch setting {
	case "runc":
		return ociRuntime{shim: runcShim, name: "runc"}, "configured", nil
	case "crun":
		bin, err := exec.LookPath("crun")
		if err != nil {
			return ociRuntime{}, "", errors.New(`runtime "crun": crun is not installed (apt-get install crun)`)
		}
		if err := crunCgroupsUsable(); err != nil {
			return ociRuntime{}, "", fmt.Errorf(`runtime "crun": %w`, err)
		}
		return ociRuntime{shim: runcShim, binary: bin, name: "crun"}, "configured", nil
	case "auto", "":
		bin, err := exec.LookPath("crun")
		if err != nil {
			return ociRuntime{shim: runcShim, name: "runc"}, "crun is not installed", nil
		}
		if err := crunCgroupsUsable(); err != nil {
			return ociRuntime{shim: runcShim, name: "runc"}, err.Error(), nil
		}
		return ociRuntime{shim: runcShim, binary: bin, name: "crun"}, "crun is installed and accepts the host's cgroups", nil
	default:
		return ociRuntime{shim: setting, name: setting}, "configured", nil
	}
}

// crunCgroupsUsable reports whether crun can manage cgroups here. crun
// refuses hybrid hosts (cgroup v1 controllers plus a cgroup2 hierarchy)
// whose cgroup2 hierarchy holds any controller; PrepareCgroups (run with
// the private containerd's start) moves such controllers to v1.
func crunCgroupsUsable() error {
	if unifiedCgroups() {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "unified", "cgroup.controllers"))
	if err != nil {
		return nil // no cgroup2 hierarchy at all: plain v1
	}
	if c := strings.Fields(string(b)); len(c) > 0 {
		return fmt.Errorf("crun refuses this hybrid cgroup host while the cgroup2 hierarchy holds controllers (%s); `mcpruntime-plugin-opensandbox daemon` mounts them as cgroup v1 hierarchies", strings.Join(c, " "))
	}
	return nil
}
