// Command mcpruntime-plugin-hostpython is a third-party style sandbox backend:
// it runs the sdk kernel with the host's python3 in fresh Linux namespaces
// (net, pid, mount, ipc, uts). It shows how little a backend needs: the sdk
// supplies the protocol, the kernel and its process supervision.
//
// Isolation is process-level: the kernel sees the host's file system and
// runs as the plugin's user. Use the wasm, container or microvm backends for
// untrusted code.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
	"github.com/mcpruntime/mcpruntime/sdk/plugin"
)

type backend struct {
	kernel.LocalSessions
}

func (b *backend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name: "hostpython", Version: "0.1.0", ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "host python3 in Linux namespaces (example plugin)",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationProcess, Languages: []string{"python"},
			EnforcedLimits: []string{sdk.LimitTimeout, sdk.LimitOutput, sdk.LimitMemory}, // memory: RLIMIT_AS
		},
	}, nil
}

func (b *backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) {
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "python", Type: sdk.TypeString, Default: "python3", Description: "Python 3.11+ interpreter to run"},
	}}, nil
}

func (b *backend) Configure(_ context.Context, cfg *sdk.Config) error {
	var c struct {
		Python string `json:"python"`
	}
	c.Python = "python3"
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	python, err := exec.LookPath(c.Python)
	if err != nil {
		return fmt.Errorf("python interpreter %q: %w", c.Python, err)
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mcpruntime-hostpython")
	}
	path, err := kernel.Install(dir)
	if err != nil {
		return err
	}
	b.Command = func(spec *sdk.SessionSpec, env []string) (*exec.Cmd, error) {
		cmd := exec.Command(python, "-I", "-B", path)
		cmd.Dir = spec.Workspace
		cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + spec.Workspace, "LANG=C.UTF-8"}, env...)
		cmd.SysProcAttr = namespaces()
		return readOnlyLibs(cmd, spec)
	}
	return nil
}

// namespaces gives the kernel its own network (loopback only), pid, mount,
// ipc and uts namespaces; it is killed if the plugin dies.
func namespaces() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWNET |
		syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS}
	if os.Geteuid() != 0 { // unprivileged: a user namespace grants the rest
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return attr
}

func main() { plugin.Serve(&backend{}) }
