package guest

import (
	"errors"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// wazero's errno set has no ENOSPC, EDQUOT or EFBIG: it hands WASI the
// errno EIO for them, so Python sees "[Errno 29] I/O error" where a full
// disk should say "No space left on device". The guest cannot be told
// better through this engine; the host can. A mount's OnStorageFull hook
// hears of every such failure, so the backend can say in the result what
// the guest saw as EIO.

// storageFull reports whether err is the host file system (or the user's
// quota) running out of room.
func storageFull(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, unix.EFBIG)
}

// OnStorageFull sets fn to be called (on the guest's thread: it must not
// block) whenever an operation on the mount fails because the host's file
// system is full. Set it before the guest runs.
func (b *BindableFS) OnStorageFull(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onFull = fn
}

// errno is toErrno, telling the mount's hook of a full file system.
func (b *BindableFS) errno(err error) experimentalsys.Errno { return errnoNoting(b.onFull, err) }

// errno is toErrno, telling the file's mount of a full file system.
func (f *file) errno(err error) experimentalsys.Errno { return errnoNoting(f.onFull, err) }

// errnoNoting is toErrno that calls onFull (if set) for a full file system.
func errnoNoting(onFull func(), err error) experimentalsys.Errno {
	if err != nil && onFull != nil && storageFull(err) {
		onFull()
	}
	return toErrno(err)
}
