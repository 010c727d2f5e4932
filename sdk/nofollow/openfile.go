//go:build unix

package nofollow

import (
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// OpenFile opens rel with flag, os.OpenFile's flags (the access mode and
// any of O_CREATE, O_EXCL, O_TRUNC, O_APPEND, O_SYNC, plus unix.O_DIRECTORY
// to require a directory), creating it with perm (before the umask) if
// O_CREATE is set. It returns the file with its fstat.
//
// No symlink is followed: one at rel or on the way fails with ErrSymlink,
// so O_CREATE never creates a file through a dangling one and O_APPEND
// never appends through one. What was opened must be a regular file or a
// directory; anything else (a fifo, socket or device) is closed again and
// refused with ErrNotRegular. It is opened non-blocking for that check, so
// a planted fifo cannot stall the caller, and set blocking again before it
// is returned unless flag has O_NONBLOCK. Write access to a directory fails
// as the kernel says (EISDIR).
func (d *Dir) OpenFile(rel string, flag int, perm fs.FileMode) (*os.File, fs.FileInfo, error) {
	var mode uint32
	if flag&os.O_CREATE != 0 {
		mode = uint32(perm.Perm())
	}
	fd, err := d.open("open", rel, flag|unix.O_NONBLOCK|unix.O_NOCTTY, mode)
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, d.pathErr("stat", rel, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		unix.Close(fd)
		return nil, nil, d.pathErr("open", rel, ErrNotRegular)
	}
	if flag&unix.O_NONBLOCK == 0 {
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, nil, d.pathErr("open", rel, err)
		}
	}
	return os.NewFile(uintptr(fd), d.join(rel)), newInfo(path.Base(rel), &st), nil
}

// At runs fn with an fd of rel's parent directory, reached without
// following a symlink, and rel's last element: for the *at calls this
// package does not wrap. fn must not follow a symlink at name either: use
// calls that never do (mkdirat, unlinkat, renameat, readlinkat, linkat
// without AT_SYMLINK_FOLLOW) or pass AT_SYMLINK_NOFOLLOW. The fd is valid
// only during the call and must not be closed by fn.
//
// A symlink on the way to the parent fails with ErrSymlink, as elsewhere in
// this package; fn's own error is returned in an *fs.PathError for rel as
// it is (an ELOOP or EXDEV of fn is not turned into ErrSymlink). rel "." has
// no parent and is refused (ErrBadPath).
func (d *Dir) At(op, rel string, fn func(dirfd int, name string) error) error {
	var fnErr error
	err := d.atParent(op, rel, func(pfd int, base string) error {
		fnErr = fn(pfd, base)
		return nil
	})
	if err != nil {
		return err
	}
	if fnErr != nil {
		return &fs.PathError{Op: op, Path: d.join(rel), Err: fnErr}
	}
	return nil
}
