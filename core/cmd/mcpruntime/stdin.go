package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// keepStdin moves the process's standard input to a private close-on-exec
// descriptor and puts /dev/null on fd 0. Children inherit fd 0, and
// go-plugin hands its plugins the core's stdin whatever the caller sets; in
// `mcpruntime mcp` that is the MCP client's request stream, which a
// third-party plugin (or what it starts) could otherwise read from, stealing
// requests. The core reads its input from the file returned (the root
// command's input); os.Stdin, which go-plugin passes on, is /dev/null.
func keepStdin() (*os.File, error) {
	private, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		if err == unix.EBADF { // started without stdin: nothing to keep
			return os.Stdin, nil
		}
		return nil, fmt.Errorf("keep stdin: %w", err)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("keep stdin: open %s: %w", os.DevNull, err)
	}
	defer unix.Close(null)
	if err := unix.Dup3(null, 0, 0); err != nil {
		return nil, fmt.Errorf("keep stdin: %w", err)
	}
	return os.NewFile(uintptr(private), "/dev/stdin"), nil
}
