//go:build linux

package worker

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
)

// stage is a staging root: a small read-only tmpfs mounted, in the worker's
// own mount namespace, over Config.StageDir. The guest's "/" is preopened on
// it before the worker knows its session, so the instance can be made and
// the kernel resumed ahead of time; the binding then mounts the session's
// directories on the mount points below it. Lookups from the preopen's
// directory fd cross those mounts (cap-std confines resolution beneath the
// preopen but does not refuse mount crossings), while a mount over the
// preopened directory itself would not be seen through the fd: hence one
// root for both guest paths rather than a preopen per path.
type stage struct {
	root string
}

// stageSize caps the staging tmpfs: it holds only empty mount points, and
// is read-only once they exist. libSize is the library root's: one
// directory per step of each mount's target.
const (
	stageSize = "size=64k,nr_inodes=64,mode=0755"
	libSize   = "size=64k,nr_inodes=4096,mode=0755"
)

// newStage mounts the staging root over dir. The worker must run in a
// mount namespace of its own with private propagation (the plugin starts it
// with CLONE_NEWNS, which Go's exec makes private): nothing mounted here
// reaches the host's mount table.
func newStage(dir string) (*stage, error) {
	if err := unix.Mount("mcpruntime-stage", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, stageSize); err != nil {
		return nil, fmt.Errorf("staging root: mount tmpfs on %s: %w", dir, err)
	}
	s := &stage{root: dir}
	for _, g := range []string{sdk.GuestWorkspace, sdk.GuestLib} {
		if err := os.MkdirAll(s.host(g), 0o755); err != nil {
			return nil, fmt.Errorf("staging root: %w", err)
		}
	}
	// Read-only: the guest's "/" is preopened read-write (the workspace
	// below it is), so its own files must not land in the staging root.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, stageSize); err != nil {
		return nil, fmt.Errorf("staging root: read-only: %w", err)
	}
	return s, nil
}

// mounts are the preopens on the staging root: "/" read-write for the
// workspace below it, and the library root's parent read-only, so that a
// write to a library is refused by the preopen's rights (EPERM) rather than
// by the read-only mount (EROFS, which wasmtime reports as EIO).
func (s *stage) mounts() []guest.Mount {
	parent := path.Dir(sdk.GuestLib)
	return []guest.Mount{
		{Dir: s.root, Guest: "/"},
		{Dir: s.host(parent), ReadOnly: true, Guest: parent},
	}
}

// host is the staging root's mount point for guest path g.
func (s *stage) host(g string) string { return filepath.Join(s.root, g) }

// bind mounts a session's directories, given as detached mount trees
// cloned by the plugin in the host's namespace (one for the workspace, then
// one per library mount, in b.Mounts' order): the workspace read-write, a
// fresh read-only tmpfs at the library root with each library mount
// read-only at its place.
func (s *stage) bind(b *Binding, trees []int) error {
	if len(trees) != 1+len(b.Mounts) {
		return fmt.Errorf("binding: %d mount trees for the workspace and %d library mounts", len(trees), len(b.Mounts))
	}
	if err := moveTree(trees[0], s.host(sdk.GuestWorkspace), false); err != nil {
		return fmt.Errorf("bind %s: %w", sdk.GuestWorkspace, err)
	}
	lib := s.host(sdk.GuestLib)
	if err := unix.Mount("mcpruntime-lib", lib, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, libSize); err != nil {
		return fmt.Errorf("bind %s: %w", sdk.GuestLib, err)
	}
	for i, m := range b.Mounts {
		dst := filepath.Join(lib, m.Rel)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("bind %s/%s: %w", sdk.GuestLib, m.Rel, err)
		}
		if err := moveTree(trees[1+i], dst, true); err != nil {
			return fmt.Errorf("bind %s/%s: %w", sdk.GuestLib, m.Rel, err)
		}
	}
	if err := unix.Mount("", lib, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, libSize); err != nil {
		return fmt.Errorf("bind %s: read-only: %w", sdk.GuestLib, err)
	}
	return nil
}

// moveTree sets a detached mount tree's flags (read-only when ro) and
// attaches it at dst.
func moveTree(tree int, dst string, ro bool) error {
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", dst, err)
	}
	return nil
}
