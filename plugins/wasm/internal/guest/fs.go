package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// BindableFS is a guest mount whose host directory can be chosen after the
// instance started. WASI preopens are fixed at instantiation, but a pooled
// kernel is started before anyone knows which workspace it will serve, so
// the mount points at an empty directory until Bind.
//
// It never follows a symlink on the host. The workspace is hostile: code of
// any session sharing it (a container can make symlinks) can plant a
// symlink, or swap a file for one, at any moment, and wazero's own
// directory mounts resolve guest paths with the host's symlink rules, so
// "leak -> /home/user/.ssh/id_rsa" would be read on the guest's behalf.
// Here every guest path is resolved from a directory fd of the mount's root
// opened once by Bind, with sdk/nofollow (openat2 RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS, else openat(O_NOFOLLOW) per component), and what it
// opened is checked with fstat.
//
// A symlink anywhere on a guest path fails the call with ELOOP, as
// open(O_NOFOLLOW) and openat2(RESOLVE_NO_SYMLINKS) answer: it says "a
// symlink is here" rather than "nothing is here" (ENOENT), so code that
// meets one does not go on to create the file in its place, and it is the
// errno POSIX gives for a symlink that is refused. Lstat, the listing of a
// directory and readlink show symlinks as the symlinks they are; stat
// (which would follow) fails with ELOOP. Symlink creation is refused
// (EPERM): a guest-made link could be followed by any other reader of the
// workspace. Opening a fifo, socket or device fails with EACCES: it is
// opened non-blocking for the fstat check and closed again, so a planted
// fifo cannot stall the guest and no device is handed to it.
type BindableFS struct {
	mu       sync.RWMutex
	root     *nofollow.Dir            // nil when the last Bind failed
	links    map[string]*nofollow.Dir // a read-only Bind's mount points (see Bind)
	bindErr  experimentalsys.Errno    // what every call answers while root is nil
	readOnly bool
	onFull   func() // see OnStorageFull
}

// NewBindableFS mounts dir (read-only when readOnly) until the next Bind.
// If dir cannot be opened, every call on the mount fails with the errno of
// that open until a Bind succeeds.
func NewBindableFS(dir string, readOnly bool) *BindableFS {
	b := &BindableFS{}
	// A failure is not lost: Bind keeps its errno in b.bindErr and every
	// call on the mount answers it.
	_ = b.Bind(dir, readOnly)
	return b
}

// Bind points the mount at the host directory dir (read-only when
// readOnly), opened here once: dir itself is trusted configuration, so
// symlinks in it are followed, but none below it. Files the guest opened
// before keep referring to what they are. On failure the mount answers
// every call with the open's errno until the next successful Bind.
//
// A read-only mount is one of the host's own directories (the stdlib, the
// kernel, or the per-session import root the backend makes, whose entries
// are symlinks to the mount sources, e.g. skills -> the skills dir). The
// symlinks directly in such a directory at Bind are its mount points: each
// is opened once, here, and the guest's paths below it are resolved from
// that directory, again without following any symlink. Deeper symlinks,
// and every symlink of a writable mount (the workspace), are never followed.
func (b *BindableFS) Bind(dir string, readOnly bool) error {
	root, err := nofollow.OpenRoot(dir)
	var links map[string]*nofollow.Dir
	if err == nil && readOnly {
		if links, err = mountPoints(root, dir); err != nil {
			if cerr := root.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			root = nil
		}
	}
	b.mu.Lock()
	oldRoot, oldLinks := b.root, b.links
	b.root, b.links, b.readOnly, b.bindErr = root, links, readOnly, 0
	if err != nil {
		b.root, b.links, b.bindErr = nil, nil, toErrno(err)
	}
	b.mu.Unlock()
	// No call uses the old directories any more: each holds the read lock
	// while it does.
	if oldRoot != nil {
		err = errors.Join(err, oldRoot.Close())
	}
	for _, d := range oldLinks {
		err = errors.Join(err, d.Close())
	}
	if err != nil {
		return fmt.Errorf("bind guest mount to %s: %w", dir, err)
	}
	return nil
}

// mountPoints opens the directories the symlinks directly in root point
// to. A symlink to something other than a directory is no mount point.
func mountPoints(root *nofollow.Dir, dir string) (map[string]*nofollow.Dir, error) {
	infos, err := root.ReadDir()
	if err != nil {
		return nil, err
	}
	var links map[string]*nofollow.Dir
	for _, fi := range infos {
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		d, err := nofollow.OpenRoot(filepath.Join(dir, fi.Name()))
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			for _, d := range links {
				err = errors.Join(err, d.Close())
			}
			return nil, err
		}
		if links == nil {
			links = map[string]*nofollow.Dir{}
		}
		links[fi.Name()] = d
	}
	return links, nil
}

// lock returns the directory rel is resolved from and rel relative to it,
// with the read lock held (release it with b.mu.RUnlock), or the errno of a
// failed Bind with the lock released.
func (b *BindableFS) lock(rel string) (*nofollow.Dir, string, bool, experimentalsys.Errno) {
	b.mu.RLock()
	if b.root == nil {
		errno := b.bindErr
		b.mu.RUnlock()
		return nil, "", false, errno
	}
	if b.links != nil {
		first, rest, _ := strings.Cut(rel, "/")
		if d, ok := b.links[first]; ok {
			if rest == "" {
				rest = "."
			}
			return d, rest, b.readOnly, 0
		}
	}
	return b.root, rel, b.readOnly, 0
}

// guestRel turns a path wazero hands a mount (cleaned, relative to the
// mount, possibly with a trailing slash that asks for a directory) into
// nofollow's form.
func guestRel(p string) (rel string, wantDir bool) {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p, wantDir = p[:len(p)-1], true
	}
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		p = "."
	}
	return p, wantDir
}

// toErrno is the guest's errno for an error of sdk/nofollow or the OS.
func toErrno(err error) experimentalsys.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, nofollow.ErrSymlink):
		return experimentalsys.ELOOP
	case errors.Is(err, nofollow.ErrNotRegular):
		return experimentalsys.EACCES
	case errors.Is(err, nofollow.ErrBadPath):
		return experimentalsys.EINVAL
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return experimentalsys.UnwrapOSError(en)
	}
	return experimentalsys.UnwrapOSError(err)
}

// writeFlags are the open flags that need a writable mount.
const writeFlags = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
	experimentalsys.O_TRUNC | experimentalsys.O_APPEND

// OpenFile implements sys.FS.
func (b *BindableFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	rel, wantDir := guestRel(path)
	root, rel, readOnly, errno := b.lock(rel)
	if errno != 0 {
		return nil, errno
	}
	defer b.mu.RUnlock()
	if readOnly && flag&writeFlags != 0 {
		// A read-only file system is what the user should read (wazero's
		// ReadFS answers ENOSYS, "Function not implemented").
		return nil, experimentalsys.EROFS
	}
	if wantDir {
		flag |= experimentalsys.O_DIRECTORY
	}
	f, fi, err := root.OpenFile(rel, osFlags(flag), perm)
	if err != nil {
		return nil, b.errno(err)
	}
	return newFile(f, fi, flag, readOnly, b.onFull), 0
}

// osFlags converts wazero's open flags. O_NOFOLLOW is implied: nothing is
// followed whether the guest asked for it or not.
func osFlags(flag experimentalsys.Oflag) int {
	var o int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_WRONLY | experimentalsys.O_RDWR) {
	case experimentalsys.O_WRONLY:
		o = os.O_WRONLY
	case experimentalsys.O_RDWR:
		o = os.O_RDWR
	default:
		o = os.O_RDONLY
	}
	for _, m := range [...]struct {
		sys experimentalsys.Oflag
		os  int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_DSYNC, unix.O_DSYNC},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY},
		{experimentalsys.O_NONBLOCK, unix.O_NONBLOCK},
	} {
		if flag&m.sys != 0 {
			o |= m.os
		}
	}
	return o
}

// Lstat implements sys.FS: a symlink is described, not followed.
func (b *BindableFS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	rel, wantDir := guestRel(path)
	root, rel, _, errno := b.lock(rel)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	defer b.mu.RUnlock()
	fi, err := root.Lstat(rel)
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	if wantDir && !fi.IsDir() {
		return sys.Stat_t{}, experimentalsys.ENOTDIR
	}
	return statOf(fi), 0
}

// Stat implements sys.FS. It would follow a symlink at path, so for one it
// fails with ELOOP; anything else is its lstat.
func (b *BindableFS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	st, errno := b.Lstat(path)
	if errno == 0 && st.Mode&fs.ModeSymlink != 0 {
		return sys.Stat_t{}, experimentalsys.ELOOP
	}
	return st, errno
}

// statOf converts a FileInfo of sdk/nofollow, whose Sys is a *unix.Stat_t.
func statOf(fi fs.FileInfo) sys.Stat_t {
	st, ok := fi.Sys().(*unix.Stat_t)
	if !ok {
		return sys.NewStat_t(fi)
	}
	return sys.Stat_t{
		Dev: uint64(st.Dev), Ino: st.Ino, Mode: fi.Mode(), Nlink: uint64(st.Nlink), Size: st.Size,
		Atim: st.Atim.Nano(), Mtim: st.Mtim.Nano(), Ctim: st.Ctim.Nano(),
	}
}

// at runs fn on the parent of path (reached without following symlinks)
// and path's last element, refusing on a read-only mount.
func (b *BindableFS) at(op, path string, fn func(dirfd int, name string) error) experimentalsys.Errno {
	rel, _ := guestRel(path)
	root, rel, readOnly, errno := b.lock(rel)
	if errno != 0 {
		return errno
	}
	defer b.mu.RUnlock()
	if readOnly {
		return experimentalsys.EROFS
	}
	return b.errno(root.At(op, rel, fn))
}

// Mkdir implements sys.FS.
func (b *BindableFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	errno := b.at("mkdir", path, func(dirfd int, name string) error {
		return unix.Mkdirat(dirfd, name, uint32(perm.Perm()))
	})
	if errno == experimentalsys.ENOTDIR {
		errno = experimentalsys.ENOENT // as wazero's directory mounts answer
	}
	return errno
}

// Chmod implements sys.FS. chmod would follow a symlink at path: for one
// it fails with ELOOP.
func (b *BindableFS) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	return b.at("chmod", path, func(dirfd int, name string) error {
		// fchmodat2 (Linux 6.6) with AT_SYMLINK_NOFOLLOW changes name
		// itself and refuses a symlink with EOPNOTSUPP.
		err := unix.Fchmodat(dirfd, name, uint32(perm.Perm()), unix.AT_SYMLINK_NOFOLLOW)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.ELOOP
		}
		// An older kernel: open name without following and fchmod what
		// was opened (which then needs read access to it).
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Fchmod(fd, uint32(perm.Perm()))
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		return err
	})
}

// Rename implements sys.FS. renameat moves a symlink itself, never what it
// points to.
func (b *BindableFS) Rename(from, to string) experimentalsys.Errno {
	return b.between("rename", from, to, func(fromFd int, fromName string, toFd int, toName string) error {
		return unix.Renameat(fromFd, fromName, toFd, toName)
	})
}

// between runs fn (an *at call on two names: rename, link) with the
// parent fds of from and to, both reached inside the mount without
// following a symlink. Writes only: a read-only mount answers EROFS.
func (b *BindableFS) between(op, from, to string, fn func(fromFd int, fromName string, toFd int, toName string) error) experimentalsys.Errno {
	fromRel, _ := guestRel(from)
	toRel, _ := guestRel(to)
	// A writable mount has no mount points: both resolve from its root.
	root, fromRel, readOnly, errno := b.lock(fromRel)
	if errno != 0 {
		return errno
	}
	defer b.mu.RUnlock()
	if readOnly {
		return experimentalsys.EROFS
	}
	return b.errno(root.At(op, fromRel, func(fromFd int, fromName string) error {
		return root.At(op, toRel, func(toFd int, toName string) error {
			return fn(fromFd, fromName, toFd, toName)
		})
	}))
}

// Rmdir implements sys.FS.
func (b *BindableFS) Rmdir(path string) experimentalsys.Errno {
	return b.at("rmdir", path, func(dirfd int, name string) error {
		return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	})
}

// Unlink implements sys.FS. A symlink is removed, not what it points to.
func (b *BindableFS) Unlink(path string) experimentalsys.Errno {
	errno := b.at("unlink", path, func(dirfd int, name string) error {
		return unix.Unlinkat(dirfd, name, 0)
	})
	if errno == experimentalsys.EPERM {
		// Linux answers EISDIR for a directory, other systems EPERM.
		if st, serr := b.Lstat(path); serr == 0 && st.Mode.IsDir() {
			errno = experimentalsys.EISDIR
		}
	}
	return errno
}

// Link implements sys.FS. Both names resolve inside the mount without
// following symlinks (linkat without AT_SYMLINK_FOLLOW links a symlink
// itself), so a hard link cannot reach outside it.
func (b *BindableFS) Link(oldPath, newPath string) experimentalsys.Errno {
	return b.between("link", oldPath, newPath, func(oldFd int, oldName string, newFd int, newName string) error {
		return unix.Linkat(oldFd, oldName, newFd, newName, 0)
	})
}

// Symlink implements sys.FS by refusing: see the type's comment.
func (b *BindableFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Readlink implements sys.FS: the link's text is returned (it is only
// text; nothing here follows it).
func (b *BindableFS) Readlink(path string) (string, experimentalsys.Errno) {
	rel, _ := guestRel(path)
	root, rel, _, errno := b.lock(rel)
	if errno != 0 {
		return "", errno
	}
	defer b.mu.RUnlock()
	target, err := root.Readlink(rel)
	if err != nil {
		return "", toErrno(err)
	}
	return target, 0
}

// Utimens implements sys.FS. wazero calls it for a guest call that would
// follow a symlink at path: for one it fails with ELOOP. The change itself
// is made with AT_SYMLINK_NOFOLLOW, so a swap after the check touches at
// most the link's own times, never what it points to.
func (b *BindableFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	ts, ok := timespecs(atim, mtim)
	return b.at("utimens", path, func(dirfd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.ELOOP
		}
		if !ok {
			return nil
		}
		return unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	})
}

// timespecs converts wazero's times (UTIME_OMIT: leave as is); false when
// both are left.
func timespecs(atim, mtim int64) ([2]unix.Timespec, bool) {
	conv := func(t int64) unix.Timespec {
		if t == experimentalsys.UTIME_OMIT {
			return unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		return unix.NsecToTimespec(t)
	}
	return [2]unix.Timespec{conv(atim), conv(mtim)},
		atim != experimentalsys.UTIME_OMIT || mtim != experimentalsys.UTIME_OMIT
}
