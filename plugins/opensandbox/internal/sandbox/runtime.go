package sandbox

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
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

// withReadOnlyBinary points the runc shim at a read-only copy of its
// runtime binary (see readOnlyRuntime); on failure the binary is used in
// place.
func (r ociRuntime) withReadOnlyBinary(log hclog.Logger) ociRuntime {
	if r.shim != runcShim {
		return r
	}
	bin := r.binary
	if bin == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			return r
		}
		bin = p
	}
	ro, err := readOnlyRuntime(bin)
	if err != nil {
		log.Warn("runtime binary used in place: each call copies it first", "binary", bin, "error", err)
		return r
	}
	r.binary = ro
	return r
}

// resolveRuntime turns the `runtime` setting into a runtime, and says why.
//
//   - "runc": the shim's runc.
//   - "crun": crun through the same shim. Container creation is the largest
//     part of a cold session start, and crun (C) does it faster than runc
//     (Go, re-executing itself as `runc init`); the bench measures both.
//   - "auto" (default): crun where it is installed and accepts the host's
//     cgroup layout, runc otherwise.
//   - anything else: a containerd shim name, used as is.
func resolveRuntime(setting string) (ociRuntime, string, error) {
	runc := ociRuntime{shim: runcShim, name: "runc"}
	switch setting {
	case "runc":
		return runc, "configured", nil
	case "crun", "auto", "":
		bin, err := daemon.UsableCrun()
		switch {
		case err == nil && setting == "crun":
			return ociRuntime{shim: runcShim, binary: bin, name: "crun"}, "configured", nil
		case err == nil:
			return ociRuntime{shim: runcShim, binary: bin, name: "crun"}, "crun is installed and accepts the host's cgroups", nil
		case setting == "crun":
			return ociRuntime{}, "", fmt.Errorf(`runtime "crun": %w`, err)
		default:
			return runc, err.Error(), nil
		}
	default:
		return ociRuntime{shim: setting, name: setting}, "configured", nil
	}
}
