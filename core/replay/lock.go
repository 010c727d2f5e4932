package replay

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// The store lock, .replay/lock, orders workspace snapshots against the
// retention sweep across processes (the daemon, an HTTP server and a
// one-shot exec can share a workspace). A snapshot holds it shared from
// checking which objects exist to writing (or touching) its manifest; the
// sweep holds it exclusive while it re-reads recent manifests and removes
// objects. So every object a manifest names either was there when the
// manifest was written, and the sweep saw that manifest as recent, or was
// removed before the snapshot looked, which then stored it again.

const lockRel = Dir + "/lock"

// Lock waits: a snapshot waits this long for a sweep to finish, a sweep
// this long for snapshots to finish. Variables for the tests.
var (
	snapshotLockWait = 30 * time.Second
	sweepLockWait    = 30 * time.Second
)

// errStoreLocked: the store lock was held by someone else for too long.
var errStoreLocked = errors.New("the replay store is locked by another process (a retention sweep, or something holding .replay/lock)")

// lockStore takes the store lock of root (shared or exclusive: how is
// unix.LOCK_SH or LOCK_EX), polling for up to wait, and returns its
// release. The lock file is opened without following a symlink.
func lockStore(root *nofollow.Dir, how int, wait time.Duration) (func(), error) {
	if err := root.MkdirAll(Dir, 0o755); err != nil {
		return nil, storeErr(Dir, err)
	}
	f, fi, err := root.OpenFile(lockRel, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store lock: %w", storeErr(Dir, err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("store lock %s: %w", lockRel, nofollow.ErrNotRegular)
	}
	deadline := time.Now().Add(wait)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := flock(f, how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the fd releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("store lock: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: waited %s", errStoreLocked, wait)
		}
		time.Sleep(delay)
	}
}
