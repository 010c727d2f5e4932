package sandbox

import (
	"context"
	"os"
	"strconv"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/initproc"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Paths inside the container besides the sdk's workspace and library.
const (
	guestKernelDir = "/mcpruntime/kernel"
	guestStateDir  = "/mcpruntime/state"
	// guestChannelDir lies in the spec's /run tmpfs: the read-only image
	// has no mount point for it, and one in a tmpfs is made at start.
	guestChannelDir = "/run/mcpruntime/channel"
)

// kernelArgs start the sdk kernel under the container init (see initproc
// and installInit): -I ignores PYTHON* variables and user site-packages, -B
// keeps bytecode files out of the workspace. The kernel is imported as a
// module so that its byte-code (see compileKernel) is used.
var kernelArgs = []string{guestKernelDir + "/" + initName, "init", "/usr/bin/python3", "-I", "-B", "-c", kernel.Bootstrap(guestKernelDir)}

// initName is the container init's copy in the kernel directory.
const initName = "init"

// sandboxCaps is the whole capability set of the (non-root) kernel.
// CAP_DAC_OVERRIDE lets it write a workspace owned by another host user
// (typically root) without changing the workspace's ownership; everything
// it can reach is the read-only image, its tmpfs and its own mounts.
var sandboxCaps = []string{"CAP_DAC_OVERRIDE"}

// specOpts build the OCI spec of a sandbox container: read-only image,
// private tmpfs, slot mounts (see mounts.go), unprivileged user without new
// privileges, default seccomp profile, its own network namespace (only
// loopback) and cgroup limits.
func (e *engine) specOpts(id string, slot slotPaths, lim limits) []oci.SpecOpts {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp",
		"MCPRUNTIME_LIB=" + sdk.GuestLib, "MCPRUNTIME_WORKSPACE=" + sdk.GuestWorkspace,
		// glibc reserves 64 MiB of address space per thread arena, which
		// counts against a session's RLIMIT_AS.
		"MALLOC_ARENA_MAX=2",
		"OPENBLAS_NUM_THREADS=1",
		// Init hands the kernel its channel FIFOs (removed from the
		// kernel's environment).
		initproc.ChannelEnv + "=" + guestChannelDir,
	}
	mounts := []specs.Mount{
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(e.s.tmpBytes, 10)}},
		{Destination: sdk.GuestWorkspace, Type: "bind", Source: slot.workspace(), Options: []string{"rbind", "rw", "nosuid", "nodev", "rslave"}},
		{Destination: sdk.GuestLib, Type: "bind", Source: slot.lib(), Options: append(readOnlyBind(), "rslave")},
		{Destination: guestStateDir, Type: "bind", Source: slot.state(), Options: []string{"rbind", "rw", "nosuid", "nodev", "noexec"}},
		// Read-only: the sandbox cannot replace the FIFOs the plugin opens
		// by path (a FIFO's data is not the file system's, so opening one
		// for writing works on a read-only mount).
		{Destination: guestChannelDir, Type: "bind", Source: slot.channel(), Options: append(readOnlyBind(), "noexec")},
		e.kernelMount(),
	}
	own := []oci.SpecOpts{
		oci.WithProcessArgs(kernelArgs...),
		oci.WithEnv(env),
		oci.WithProcessCwd(sdk.GuestWorkspace),
		oci.WithCapabilities(sandboxCaps),
		oci.WithAmbientCapabilities(sandboxCaps),
		oci.WithHostname("sandbox"),
		oci.WithMounts(mounts),
	}
	return append(own, e.commonSpecOpts(id, lim)...)
}

func readOnlyBind() []string { return []string{"rbind", "ro", "nosuid", "nodev"} }

// kernelMount shows the kernel directory (kernel, its byte-code, init) read-only.
func (e *engine) kernelMount() specs.Mount {
	return specs.Mount{Destination: guestKernelDir, Type: "bind", Source: e.kernelDir, Options: readOnlyBind()}
}

// commonSpecOpts are what every container of this plugin gets, sandboxes
// and the anchor alike: read-only image, unprivileged user without new
// privileges, default seccomp profile, cgroup limits, the plugin's shim.
// They go after a container's own options: the default seccomp profile
// depends on the capabilities already in the spec.
func (e *engine) commonSpecOpts(id string, lim limits) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithRootFSReadonly(),
		oci.WithUIDGID(image.SandboxUID, image.SandboxUID),
		oci.WithNoNewPrivileges,
		oci.WithCgroup(cgroupParent + "/" + id),
		seccomp.WithDefaultProfile(),
		withLimits(lim),
		// runc 1.1 (Debian 12) knows runtime-spec 1.0.2.
		withOCIVersion("1.0.2"),
		// Slot mounts reach running containers only if the root stays a
		// slave of the host's mounts: runc's default, but crun makes it
		// private unless told.
		withRootfsPropagation("rslave"),
		// One shim serves all containers of this plugin process: a cold
		// start then skips starting a shim (two process starts).
		oci.WithAnnotations(map[string]string{shimGroupAnnotation: "osb-" + e.owner}),
	}
	if e.seccomp != nil {
		opts = append(opts, e.seccomp.specOpt())
	}
	return opts
}

func withLimits(l limits) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		if l.memory > 0 {
			if err := oci.WithMemoryLimit(uint64(l.memory))(ctx, c, ctr, s); err != nil {
				return err
			}
			if swapAccounting() {
				if err := oci.WithMemorySwap(l.memory)(ctx, c, ctr, s); err != nil {
					return err
				}
			}
		}
		if l.pids > 0 {
			if err := oci.WithPidsLimit(l.pids)(ctx, c, ctr, s); err != nil {
				return err
			}
		}
		if l.cpu > 0 {
			return oci.WithCPUCFS(int64(l.cpu*cpuPeriod), cpuPeriod)(ctx, c, ctr, s)
		}
		return nil
	}
}

// swapAccounting: without it, a memory+swap limit cannot be set (v1).
func swapAccounting() bool {
	if unifiedCgroups() {
		return false
	}
	_, err := os.Stat(cgroupRoot + "/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

func withOCIVersion(v string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Version = v
		return nil
	}
}

func withRootfsPropagation(mode string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.RootfsPropagation = mode
		return nil
	}
}
