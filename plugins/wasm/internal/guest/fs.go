package guest

import (
	"io/fs"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// BindableFS is a guest mount whose host directory can be chosen after the
// instance started. WASI preopens are fixed at instantiation, but a pooled
// kernel is started before anyone knows which workspace it will serve, so
// the mount points at an empty directory until Bind.
//
// It also refuses symlink creation: wazero resolves guest paths on the host
// with the host's symlink rules, so a guest-made link such as
// "x -> ../../etc" would be followed out of the mount.
type BindableFS struct {
	mu       sync.RWMutex
	inner    experimentalsys.FS
	readOnly bool
}

// NewBindableFS mounts dir (read-only when readOnly) until the next Bind.
func NewBindableFS(dir string, readOnly bool) *BindableFS {
	b := &BindableFS{}
	b.Bind(dir, readOnly)
	return b
}

// Bind points the mount at the host directory dir.
func (b *BindableFS) Bind(dir string, readOnly bool) {
	var inner experimentalsys.FS = sysfs.DirFS(dir)
	if readOnly {
		inner = &sysfs.ReadFS{FS: inner}
	}
	b.mu.Lock()
	b.inner, b.readOnly = inner, readOnly
	b.mu.Unlock()
}

func (b *BindableFS) fs() experimentalsys.FS {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.inner
}

// OpenFile implements sys.FS.
func (b *BindableFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	b.mu.RLock()
	inner, readOnly := b.inner, b.readOnly
	b.mu.RUnlock()
	if readOnly && flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR|experimentalsys.O_CREAT|experimentalsys.O_TRUNC) != 0 {
		// ReadFS answers ENOSYS, which Python reports as "Function not
		// implemented"; a read-only file system is what the user should read.
		return nil, experimentalsys.EROFS
	}
	return inner.OpenFile(path, flag, perm)
}

// Lstat implements sys.FS.
func (b *BindableFS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	return b.fs().Lstat(path)
}

// Stat implements sys.FS.
func (b *BindableFS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	return b.fs().Stat(path)
}

// Mkdir implements sys.FS.
func (b *BindableFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	return b.fs().Mkdir(path, perm)
}

// Chmod implements sys.FS.
func (b *BindableFS) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	return b.fs().Chmod(path, perm)
}

// Rename implements sys.FS.
func (b *BindableFS) Rename(from, to string) experimentalsys.Errno {
	return b.fs().Rename(from, to)
}

// Rmdir implements sys.FS.
func (b *BindableFS) Rmdir(path string) experimentalsys.Errno { return b.fs().Rmdir(path) }

// Unlink implements sys.FS.
func (b *BindableFS) Unlink(path string) experimentalsys.Errno { return b.fs().Unlink(path) }

// Link implements sys.FS. Both names resolve inside the mount, so a hard
// link cannot reach outside it.
func (b *BindableFS) Link(oldPath, newPath string) experimentalsys.Errno {
	return b.fs().Link(oldPath, newPath)
}

// Symlink implements sys.FS by refusing: see the type's comment.
func (b *BindableFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Readlink implements sys.FS.
func (b *BindableFS) Readlink(path string) (string, experimentalsys.Errno) {
	return b.fs().Readlink(path)
}

// Utimens implements sys.FS.
func (b *BindableFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	return b.fs().Utimens(path, atim, mtim)
}
