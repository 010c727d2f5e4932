package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// roLibsArg starts this binary in its read-only-libraries mode: the kernel
// command goes through it so that, inside the kernel's fresh mount
// namespace, the session's library mounts are bind-mounted read-only over
// themselves before python starts. The kernel reaches them through
// symlinks in its import root; without this it could write through those
// into the host directories (the skills, the tool stubs).
const roLibsArg = "mcpruntime-hostpython-ro-libs"

// readOnlyLibs routes cmd through roLibsArg when the session has mounts.
// Library mounts are read-only whatever the Mount asks (sdk.LibMount).
func readOnlyLibs(cmd *exec.Cmd, spec *sdk.SessionSpec) (*exec.Cmd, error) {
	if len(spec.Mounts) == 0 {
		return cmd, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("read-only mounts: %w", err)
	}
	args := []string{self, roLibsArg}
	for _, m := range spec.Mounts {
		args = append(args, m.Source)
	}
	cmd.Args = append(append(args, "--", cmd.Path), cmd.Args[1:]...)
	cmd.Path = self
	return cmd, nil
}

// In init, not main: the test binary, which serves the backend in process,
// must run this mode too.
func init() {
	if len(os.Args) > 1 && os.Args[1] == roLibsArg {
		if err := roLibsMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "hostpython: read-only mounts:", err)
			os.Exit(126)
		}
	}
}

// roLibsMain makes each source before "--" read-only in this process's
// mount namespace, then executes the command after it.
func roLibsMain(args []string) error {
	// Nothing done here may propagate back to the host's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	for len(args) > 0 && args[0] != "--" {
		src := args[0]
		args = args[1:]
		if err := syscall.Mount(src, src, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		// A remount must keep the flags a user namespace locked; the
		// statfs flags of these have the values of the mount flags.
		var st syscall.Statfs_t
		if err := syscall.Statfs(src, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", src, err)
		}
		keep := uintptr(st.Flags) & (syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_NOATIME | syscall.MS_NODIRATIME | syscall.MS_RELATIME)
		if err := syscall.Mount("", src, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|keep, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", src, err)
		}
	}
	if len(args) < 2 {
		return fmt.Errorf("no command after --")
	}
	return syscall.Exec(args[1], args[1:], os.Environ())
}
