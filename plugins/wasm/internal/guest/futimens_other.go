//go:build !linux

package guest

import "golang.org/x/sys/unix"

// futimens is not implemented off Linux.
func futimens(int, *[2]unix.Timespec) error { return unix.ENOSYS }
