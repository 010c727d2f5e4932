package agent

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// The guest's workspace is a tmpfs mirrored to the host after each
// execution. Left at tmpfs's default size, code could write far more than
// the host's file system holds: the write succeeds in the guest and fails
// only when the host copies it back, so Python never sees ENOSPC. Before
// each execution the host sends what its workspace file system has left
// (OpQuota) and the agent resizes the tmpfs to what it holds now plus
// that, so a write that cannot land on the host fails in the guest with
// ENOSPC, as it would on a mounted workspace.

// quota remembers the tmpfs's size and inode count at boot: resizing never
// goes above them (the guest's memory bounds the tmpfs too).
type quota struct {
	once      sync.Once
	capBytes  uint64
	capInodes uint64
	err       error
}

// apply resizes the workspace tmpfs to its use plus freeBytes and
// freeInodes (both what the host's workspace has left).
func (q *quota) apply(freeBytes, freeInodes int64) error {
	if ballast != nil {
		return q.applyDisk(freeBytes)
	}
	q.once.Do(func() {
		var st unix.Statfs_t
		if err := unix.Statfs(workspaceDir, &st); err != nil {
			q.err = fmt.Errorf("statfs %s: %w", workspaceDir, err)
			return
		}
		q.capBytes, q.capInodes = st.Blocks*uint64(st.Bsize), st.Files
	})
	if q.err != nil {
		return q.err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(workspaceDir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", workspaceDir, err)
	}
	usedBytes := (st.Blocks - st.Bfree) * uint64(st.Bsize)
	usedInodes := st.Files - st.Ffree
	size := min(usedBytes+uint64(max(freeBytes, 0)), q.capBytes)
	inodes := min(usedInodes+uint64(max(freeInodes, 0)), q.capInodes)
	// tmpfs counts whole pages; a size below what it holds is refused.
	page := uint64(unix.Getpagesize())
	size = max((size+page-1)/page*page, usedBytes, page)
	inodes = max(inodes, usedInodes+1)
	opts := fmt.Sprintf("mode=777,size=%d,nr_inodes=%d", size, inodes)
	if err := unix.Mount("tmpfs", workspaceDir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("resize the workspace tmpfs (%s): %w", opts, err)
	}
	return nil
}

// applyDisk bounds a workspace disk the same way: the ballast file grows
// (fallocate: no data written, the host's file stays sparse) or shrinks
// until the disk has what the host has left, never below empty.
func (q *quota) applyDisk(freeBytes int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(workspaceDir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", workspaceDir, err)
	}
	avail := int64(st.Bavail) * st.Bsize
	var bst unix.Stat_t
	if err := unix.Fstat(int(ballast.Fd()), &bst); err != nil {
		return fmt.Errorf("workspace ballast: %w", err)
	}
	size := bst.Size
	switch {
	case avail > freeBytes+st.Bsize:
		grow := avail - max(freeBytes, 0)
		if err := unix.Fallocate(int(ballast.Fd()), 0, size, grow); err != nil && err != unix.ENOSPC {
			return fmt.Errorf("workspace ballast: %w", err)
		}
	case avail < freeBytes && size > 0:
		if err := ballast.Truncate(max(size-(freeBytes-avail), 0)); err != nil {
			return fmt.Errorf("workspace ballast: %w", err)
		}
	}
	return nil
}
