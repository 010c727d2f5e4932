package sandboxtest

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// fillCode writes until the workspace is full and prints the errno's name,
// or "no error" if every write was accepted.
const fillCode = `import errno
try:
    with open("fill.bin", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
            f.flush()
    print("no error")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
`

// checkDiskFull gives a session a workspace on a 2 MiB tmpfs and fills it.
// The code must learn that its write failed, as ENOSPC; a backend whose
// engine cannot raise ENOSPC may raise EIO if the result's message says
// ENOSPC. A write that succeeds in the sandbox and is lost on the way to
// the host is the failure this check exists for. It needs the right to
// mount (root), and is skipped without it.
func checkDiskFull(s *Suite) error {
	dir, err := os.MkdirTemp("", "mcpruntime-diskfull-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=2m,mode=0777"); err != nil {
		if errors.Is(err, unix.EPERM) {
			return skip("mounting a small tmpfs needs root: %v", err)
		}
		return fmt.Errorf("mount a 2 MiB tmpfs on %s: %w", dir, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH) //nolint:errcheck // best effort: the test is over
	id, err := s.NewSessionSpec(bg(), &sdk.SessionSpec{Workspace: dir})
	if err != nil {
		return err
	}
	defer s.Plugin.DestroySession(bg(), id) //nolint:errcheck // the mount goes next
	out, err := s.Exec(bg(), id, fillCode)
	if err != nil {
		return err
	}
	got := strings.TrimSpace(out.Stdout)
	switch {
	case got == "ENOSPC" || got == "EDQUOT":
		return nil
	case got == "EIO" && strings.Contains(out.Result.Message, "ENOSPC"):
		return nil
	case got == "EIO":
		return fmt.Errorf("the code got EIO for a full file system and the result does not say ENOSPC (message %q)", out.Result.Message)
	case got == "no error":
		return fmt.Errorf("64 MiB written to a 2 MiB workspace without an error in the code (result: exit %d, %q)", out.Result.ExitCode, out.Result.Message)
	}
	return fmt.Errorf("filling the workspace printed %q (stderr %q), want ENOSPC", got, out.Stderr)
}
