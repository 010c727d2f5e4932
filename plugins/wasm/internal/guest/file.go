package guest

import (
	"errors"
	"io"
	"io/fs"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is a regular file or directory a BindableFS opened for the guest:
// an *os.File reached without following symlinks. Everything it does goes
// through its fd, never a path, so a later swap of its name for a symlink
// changes nothing for it; directory entries are lstat'ed relative to it.
type file struct {
	f        *os.File
	fd       int
	dev      uint64
	ino      sys.Inode
	isDir    bool
	append   bool
	readOnly bool // the mount is read-only: no writes, syncs or times
	closed   bool
	onFull   func() // the mount's OnStorageFull hook
}

var _ experimentalsys.File = (*file)(nil)

func newFile(f *os.File, fi fs.FileInfo, flag experimentalsys.Oflag, readOnly bool, onFull func()) *file {
	st := statOf(fi)
	return &file{f: f, fd: int(f.Fd()), dev: st.Dev, ino: st.Ino, isDir: fi.IsDir(),
		append: flag&experimentalsys.O_APPEND != 0, readOnly: readOnly, onFull: onFull}
}

// Dev implements sys.File.
func (f *file) Dev() (uint64, experimentalsys.Errno) { return f.dev, 0 }

// Ino implements sys.File.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) { return f.ino, 0 }

// IsDir implements sys.File.
func (f *file) IsDir() (bool, experimentalsys.Errno) { return f.isDir, 0 }

// IsAppend implements sys.File.
func (f *file) IsAppend() bool { return f.append }

// SetAppend implements sys.File (fcntl can switch O_APPEND on an open fd).
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	if errno := f.check(true); errno != 0 {
		return errno
	}
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err != nil {
		return toErrno(err)
	}
	if enable {
		fl |= unix.O_APPEND
	} else {
		fl &^= unix.O_APPEND
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl); err != nil {
		return toErrno(err)
	}
	f.append = enable
	return 0
}

// check answers EBADF for a closed file and, for an operation that needs a
// regular file, EISDIR for a directory.
func (f *file) check(wantFile bool) experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case wantFile && f.isDir:
		return experimentalsys.EISDIR
	}
	return 0
}

// checkWrite is check for writes, which a read-only mount refuses.
func (f *file) checkWrite() experimentalsys.Errno {
	if errno := f.check(true); errno != 0 {
		return errno
	}
	if f.readOnly {
		return experimentalsys.EBADF
	}
	return 0
}

// Stat implements sys.File.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	fi, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Read implements sys.File.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, f.check(true)
	}
	n, err := f.f.Read(buf)
	return n, ioErrno(err)
}

// Pread implements sys.File.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, f.check(true)
	}
	n, err := f.f.ReadAt(buf, off)
	return n, ioErrno(err)
}

// Seek implements sys.File. Seeking a directory to 0 rewinds its listing.
func (f *file) Seek(offset int64, whence int) (int64, experimentalsys.Errno) {
	if uint(whence) > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	n, err := f.f.Seek(offset, whence)
	return n, toErrno(err)
}

// Readdir implements sys.File. Each entry is lstat'ed relative to the
// directory's fd (for its inode and type: a symlink is listed as one). An
// entry removed between listing and lstat is left out.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if !f.isDir {
		return nil, experimentalsys.ENOTDIR
	}
	var out []experimentalsys.Dirent
	want := n
	for {
		names, err := f.f.Readdirnames(want)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, toErrno(err)
		}
		for _, name := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(f.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return nil, toErrno(err)
			}
			out = append(out, experimentalsys.Dirent{Name: name, Ino: st.Ino, Type: fileType(uint32(st.Mode))})
		}
		// Readdirnames(k > 0) returns fewer than k only at the end.
		if n <= 0 || len(out) >= n || len(names) < want {
			return out, 0
		}
		want = n - len(out)
	}
}

// fileType is the fs.FileMode type of a stat's mode.
func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return 0
}

// Write implements sys.File.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if errno := f.checkWrite(); errno != 0 || len(buf) == 0 {
		return 0, errno
	}
	n, err := f.f.Write(buf)
	return n, f.errno(err)
}

// Pwrite implements sys.File.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if errno := f.checkWrite(); errno != 0 || len(buf) == 0 {
		return 0, errno
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	n, err := f.f.WriteAt(buf, off)
	return n, f.errno(err)
}

// Truncate implements sys.File.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if errno := f.checkWrite(); errno != 0 {
		return errno
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return f.errno(f.f.Truncate(size))
}

// Sync implements sys.File.
func (f *file) Sync() experimentalsys.Errno {
	if f.closed || f.readOnly {
		return experimentalsys.EBADF
	}
	return f.errno(f.f.Sync())
}

// Datasync implements sys.File (as a full sync).
func (f *file) Datasync() experimentalsys.Errno { return f.Sync() }

// Utimens implements sys.File.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.closed || f.readOnly {
		return experimentalsys.EBADF
	}
	ts, ok := timespecs(atim, mtim)
	if !ok {
		return 0
	}
	return toErrno(futimens(f.fd, &ts))
}

// Close implements sys.File.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return f.errno(f.f.Close())
}

// ioErrno is toErrno for reads: EOF is no error.
func ioErrno(err error) experimentalsys.Errno {
	if err == nil || errors.Is(err, io.EOF) {
		return 0
	}
	return toErrno(err)
}
