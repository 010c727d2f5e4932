//go:build unix

// Package nofollow opens, lists, creates and removes entries below a
// directory without ever following a symlink, for host code working on a
// directory whose contents someone else controls. The workspace is one:
// sandbox code, or another session sharing it, can swap any file or
// directory for a symlink at any moment, so a path checked and then opened
// by name can lead anywhere by the time it is opened.
//
// Every operation resolves its path relative to an open directory fd: with
// openat2 and RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS
// where the kernel has it, else one openat(O_NOFOLLOW) per component. A
// symlink anywhere on a path fails the call with an error matching
// [ErrSymlink]; a symlink is never opened, only listed, read with Readlink,
// created or removed. What was opened is checked with fstat: [Dir.Open]
// returns only regular files, [Dir.OpenDir] only directories.
//
// Paths are slash-separated, relative and clean ([io/fs.ValidPath]): no
// "..", no empty or "." elements; "." alone is the directory itself.
package nofollow

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrSymlink is matched (errors.Is) by the error of an operation whose
	// path has a symlink where a directory or the entry itself should be.
	ErrSymlink = errors.New("a symlink is on the path (symlinks are not followed)")
	// ErrNotRegular is matched by the error of Open on something that is
	// not a regular file (a directory, fifo, socket or device).
	ErrNotRegular = errors.New("not a regular file")
	// ErrBadPath is matched by the error of an operation given a path that
	// is absolute, not clean, or climbs with "..".
	ErrBadPath = errors.New("not a clean relative path")
)

// noOpenat2 is set once openat2 answered ENOSYS (kernels before 5.6, or a
// seccomp filter that hides it; EPERM too, if openat2 of "." fails alike):
// every later open walks the components.
var noOpenat2 atomic.Bool

// Dir is an open directory. Every path given to its methods is resolved
// from its fd, never from its name, so renaming or replacing the directory
// by its name later does not change what it refers to.
type Dir struct {
	fd   int
	name string // for messages: the root's path, joined with rel paths below it
}

// OpenRoot opens the directory at path (the one trusted path: symlinks in
// it are followed, as the caller configured it) as the root of everything
// opened through it.
func OpenRoot(path string) (*Dir, error) {
	fd, err := retry(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, name: path}, nil
}

// Name is the directory's path as it was opened (for messages).
func (d *Dir) Name() string { return d.name }

// Close closes the directory's fd.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: d.name, Err: err}
	}
	return nil
}

// Open opens the regular file rel for reading and returns it with its
// fstat. Anything other than a regular file is refused (ErrNotRegular);
// fifos and devices are opened non-blocking for that check, so a fifo
// planted in the directory cannot stall the caller.
func (d *Dir) Open(rel string) (*os.File, fs.FileInfo, error) {
	f, info, err := d.OpenFile(rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() { // OpenFile also takes a directory
		f.Close()
		return nil, nil, d.pathErr("open", rel, ErrNotRegular)
	}
	return f, info, nil
}

// OpenDir opens the directory rel.
func (d *Dir) OpenDir(rel string) (*Dir, error) {
	fd, err := d.open("open", rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{fd: fd, name: d.join(rel)}, nil
}

// Stat is the fstat of the directory itself.
func (d *Dir) Stat() (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	return newInfo(path.Base(d.name), &st), nil
}

// Chmod sets the permission bits of the directory itself.
func (d *Dir) Chmod(perm fs.FileMode) error {
	if err := unix.Fchmod(d.fd, uint32(perm.Perm())); err != nil {
		return &fs.PathError{Op: "chmod", Path: d.name, Err: err}
	}
	return nil
}

// ReadDir lists the directory: the lstat of each entry (a symlink is
// reported as a symlink), sorted by name. Entries removed while listing are
// left out.
func (d *Dir) ReadDir() ([]fs.FileInfo, error) {
	// A fresh open file description: listing through d.fd would share
	// (and leave at the end) its offset.
	fd, err := retry(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.name)
	names, err := f.Readdirnames(-1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.name, err)
	}
	sort.Strings(names)
	infos := make([]fs.FileInfo, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, d.pathErr("lstat", n, err)
		}
		infos = append(infos, newInfo(n, &st))
	}
	return infos, nil
}

// Lstat is the lstat of rel: a symlink is described, not followed.
func (d *Dir) Lstat(rel string) (fs.FileInfo, error) {
	if rel == "." {
		return d.Stat()
	}
	var st unix.Stat_t
	err := d.atParent("lstat", rel, func(pfd int, base string) error {
		return unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return nil, err
	}
	return newInfo(path.Base(rel), &st), nil
}

// Readlink returns the target of the symlink rel.
func (d *Dir) Readlink(rel string) (string, error) {
	var target string
	err := d.atParent("readlink", rel, func(pfd int, base string) error {
		for size := 256; ; size *= 2 {
			b := make([]byte, size)
			n, err := unix.Readlinkat(pfd, base, b)
			if err != nil {
				return err
			}
			if n < size {
				target = string(b[:n])
				return nil
			}
		}
	})
	return target, err
}

// Symlink creates the symlink rel pointing to target (which is stored, not
// resolved).
func (d *Dir) Symlink(target, rel string) error {
	return d.atParent("symlink", rel, func(pfd int, base string) error {
		return unix.Symlinkat(target, pfd, base)
	})
}

// Mkdir creates the directory rel.
func (d *Dir) Mkdir(rel string, perm fs.FileMode) error {
	return d.atParent("mkdir", rel, func(pfd int, base string) error {
		return unix.Mkdirat(pfd, base, uint32(perm.Perm()))
	})
}

// MkdirAll creates rel and the directories above it that are missing; an
// existing symlink on the way is refused (ErrSymlink), not followed.
func (d *Dir) MkdirAll(rel string, perm fs.FileMode) error {
	if !fs.ValidPath(rel) {
		return d.pathErr("mkdir", rel, ErrBadPath)
	}
	if rel == "." {
		return nil
	}
	cur := d.fd
	defer func() {
		if cur != d.fd {
			unix.Close(cur)
		}
	}()
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		fd, err := openComponent(cur, p)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, p, uint32(perm.Perm())); err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = openComponent(cur, p)
			}
		}
		if err != nil {
			return d.pathErr("mkdir", strings.Join(parts[:i+1], "/"), err)
		}
		if cur != d.fd {
			unix.Close(cur)
		}
		cur = fd
	}
	return nil
}

// Remove removes the file, symlink or empty directory rel.
func (d *Dir) Remove(rel string) error {
	return d.atParent("remove", rel, func(pfd int, base string) error {
		err := unix.Unlinkat(pfd, base, 0)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			if derr := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); derr == nil || !errors.Is(derr, unix.ENOTDIR) {
				return derr
			}
		}
		return err
	})
}

// RemoveAll removes rel and everything below it; a missing rel is no
// error. Symlinks below it are removed, never followed.
func (d *Dir) RemoveAll(rel string) error {
	if rel == "." {
		return d.pathErr("remove", rel, ErrBadPath)
	}
	err := d.atParent("remove", rel, func(pfd int, base string) error { return removeAllAt(pfd, base, 0) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func removeAllAt(pfd int, name string, depth int) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	if depth > 4096 {
		return fmt.Errorf("%s: nested too deep", name)
	}
	fd, oerr := retry(func() (int, error) {
		return unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if oerr != nil {
		if errors.Is(oerr, unix.ENOENT) {
			return nil
		}
		if errors.Is(oerr, unix.ELOOP) || errors.Is(oerr, unix.ENOTDIR) {
			// Swapped for a symlink or file since: unlink that.
			return unix.Unlinkat(pfd, name, 0)
		}
		return oerr
	}
	f := os.NewFile(uintptr(fd), name)
	names, lerr := f.Readdirnames(-1)
	if lerr == nil {
		for _, n := range names {
			if err := removeAllAt(fd, n, depth+1); err != nil {
				f.Close()
				return err
			}
		}
	}
	f.Close()
	if lerr != nil {
		return lerr
	}
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// ReplaceFile writes the file rel whole: write fills a new temporary file
// in rel's directory (and may Sync it), which then gets perm and is renamed
// over rel. Whatever rel was (a file, possibly a hard link to something
// else, or a symlink) is replaced, never written through; a directory at
// rel fails the rename. If write fails, rel is untouched.
func (d *Dir) ReplaceFile(rel string, perm fs.FileMode, write func(*os.File) error) error {
	if rel == "." {
		return d.pathErr("write", rel, ErrBadPath)
	}
	return d.atParent("write", rel, func(pfd int, base string) error {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return err
		}
		tmp := ".tmp-" + hex.EncodeToString(rnd[:])
		fd, err := retry(func() (int, error) {
			return unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), d.join(rel))
		err = write(f)
		if err == nil {
			err = f.Chmod(perm.Perm())
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = unix.Renameat(pfd, tmp, pfd, base)
		}
		if err != nil {
			if rerr := unix.Unlinkat(pfd, tmp, 0); rerr != nil && !errors.Is(rerr, unix.ENOENT) {
				err = errors.Join(err, fmt.Errorf("remove temporary %s: %w", tmp, rerr))
			}
		}
		return err
	})
}

// WalkFunc is called by Walk for each entry below the walked directory,
// parents before children, in name order. rel is the entry's path from the
// walked directory and info its lstat (a symlink is reported as one and
// never followed). parent is the open directory holding the entry, valid
// during the call: open the entry with parent.Open(info.Name()), which
// refers to what is in that directory now, not to a path re-resolved from
// the root.
//
// For a directory fn is called before its contents; returning fs.SkipDir
// then skips them. If the directory cannot be opened or listed, fn is
// called a second time with err set; returning nil then goes on with the
// next entry. Any other error fn returns stops the walk and is returned.
type WalkFunc func(rel string, info fs.FileInfo, parent *Dir, err error) error

// Walk calls fn for everything below d, descending through directory fds
// opened one component at a time with O_NOFOLLOW, so no entry swapped for
// a symlink during the walk leads it out of d.
func (d *Dir) Walk(fn WalkFunc) error {
	infos, err := d.ReadDir()
	if err != nil {
		return err
	}
	return d.walk("", infos, fn)
}

func (d *Dir) walk(prefix string, infos []fs.FileInfo, fn WalkFunc) error {
	for _, info := range infos {
		rel := info.Name()
		if prefix != "" {
			rel = prefix + "/" + rel
		}
		err := fn(rel, info, d, nil)
		if errors.Is(err, fs.SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if !info.IsDir() {
			continue
		}
		sub, err := d.OpenDir(info.Name())
		var subInfos []fs.FileInfo
		if err == nil {
			subInfos, err = sub.ReadDir()
		}
		if err != nil {
			if sub != nil {
				sub.Close()
			}
			if err := fn(rel, info, d, err); err != nil && !errors.Is(err, fs.SkipDir) {
				return err
			}
			continue
		}
		err = sub.walk(rel, subInfos, fn)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// open opens rel below d with flags (O_CLOEXEC is added) and no symlink
// resolution.
func (d *Dir) open(op, rel string, flags int, mode uint32) (int, error) {
	if !fs.ValidPath(rel) {
		return -1, d.pathErr(op, rel, ErrBadPath)
	}
	fd, err := openBeneath(d.fd, rel, flags|unix.O_CLOEXEC, mode)
	if err != nil {
		return -1, d.pathErr(op, rel, err)
	}
	return fd, nil
}

// atParent runs fn with an fd of rel's parent directory and rel's last
// element.
func (d *Dir) atParent(op, rel string, fn func(pfd int, base string) error) error {
	if !fs.ValidPath(rel) || rel == "." {
		return d.pathErr(op, rel, ErrBadPath)
	}
	dir, base := path.Split(rel)
	pfd := d.fd
	if dir != "" {
		fd, err := openBeneath(d.fd, strings.TrimSuffix(dir, "/"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return d.pathErr(op, rel, err)
		}
		defer unix.Close(fd)
		pfd = fd
	}
	if err := fn(pfd, base); err != nil {
		return d.pathErr(op, rel, err)
	}
	return nil
}

func (d *Dir) join(rel string) string {
	if rel == "." {
		return d.name
	}
	return d.name + "/" + rel
}

// pathErr wraps err for rel, turning the errnos of a refused symlink into
// ErrSymlink.
func (d *Dir) pathErr(op, rel string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		err = ErrSymlink
	}
	return &fs.PathError{Op: op, Path: d.join(rel), Err: err}
}

// openBeneath opens rel below dirfd without following any symlink.
func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if !noOpenat2.Load() {
		fd, err := retry(func() (int, error) { return openat2(dirfd, rel, flags, mode) })
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fd, err
		}
		// Some seccomp filters answer EPERM for syscalls they do not
		// know: give openat2 up only if it fails on the directory itself.
		if errors.Is(err, unix.EPERM) {
			pfd, perr := retry(func() (int, error) { return openat2(dirfd, ".", pathFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
			if perr == nil {
				unix.Close(pfd)
				return fd, err
			}
			if !errors.Is(perr, unix.ENOSYS) && !errors.Is(perr, unix.EPERM) {
				return fd, err
			}
		}
		noOpenat2.Store(true)
	}
	return openComponents(dirfd, rel, flags, mode)
}

// openComponents is openBeneath without openat2: each directory on the way
// is opened with O_NOFOLLOW relative to the previous one.
func openComponents(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	for _, p := range parts[:len(parts)-1] {
		fd, err := openComponent(cur, p)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	last := parts[len(parts)-1]
	fd, err := retry(func() (int, error) { return unix.Openat(cur, last, flags|unix.O_NOFOLLOW, mode) })
	if err != nil && flags&unix.O_DIRECTORY != 0 && errors.Is(err, unix.ENOTDIR) && isSymlinkAt(cur, last) {
		err = unix.ELOOP
	}
	if cur != dirfd {
		unix.Close(cur)
	}
	return fd, err
}

// openComponent opens the directory name in dirfd for walking on, refusing
// a symlink (ELOOP).
func openComponent(dirfd int, name string) (int, error) {
	fd, err := retry(func() (int, error) {
		return unix.Openat(dirfd, name, pathFlags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil && (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)) && isSymlinkAt(dirfd, name) {
		return -1, unix.ELOOP
	}
	return fd, err
}

// isSymlinkAt tells a symlink refused with ENOTDIR (O_DIRECTORY|O_NOFOLLOW
// on a symlink) from a file: name is a symlink now, or a directory, which
// it was not when the open failed (swapped since).
func isSymlinkAt(dirfd int, name string) bool {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFLNK || t == unix.S_IFDIR
}

func retry(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// info is an fs.FileInfo from a stat; Sys returns the *unix.Stat_t.
type info struct {
	name string
	st   unix.Stat_t
}

func newInfo(name string, st *unix.Stat_t) *info { return &info{name: name, st: *st} }

func (i *info) Name() string       { return i.name }
func (i *info) Size() int64        { return i.st.Size }
func (i *info) IsDir() bool        { return i.Mode().IsDir() }
func (i *info) Sys() any           { return &i.st }
func (i *info) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i *info) Mode() fs.FileMode {
	m := fs.FileMode(i.st.Mode & 0o777)
	switch i.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if i.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if i.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if i.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Ino is the inode number of a FileInfo returned by this package (0 for
// others), for callers that key caches by it.
func Ino(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*unix.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
