package nofollow

import "golang.org/x/sys/unix"

// pathFlags opens directories walked through, not read: O_PATH needs only
// search permission.
const pathFlags = unix.O_PATH

// openat2 opens rel below dirfd with no symlink, magic link or ".."
// resolution out of it.
func openat2(dirfd int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	// O_TMPFILE includes O_DIRECTORY: a mode given with O_DIRECTORY alone
	// would make openat2 fail with EINVAL.
	if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE {
		how.Mode = uint64(mode)
	}
	return unix.Openat2(dirfd, rel, &how)
}
