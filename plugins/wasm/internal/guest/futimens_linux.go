package guest

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// futimens sets the times of the file open as fd: utimensat with a NULL
// path acts on fd itself (Linux).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
