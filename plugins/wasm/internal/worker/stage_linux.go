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
// is read-only once they exist.
const stageSize = "size=64k,nr_inodes=64,mode=0755"

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

// bind mounts a session's directories: the workspace read-write, a fresh
// read-only tmpfs at the library root with each library mount bound
// read-only at its place. Sources are opened by the host paths the plugin
// checked; bind mounts do not follow a later swap of a path component.
func (s *stage) bind(b *Binding) error {
	if err := bindMount(b.Workspace, s.host(sdk.GuestWorkspace), false); err != nil {
		return fmt.Errorf("bind %s: %w", sdk.GuestWorkspace, err)
	}
	lib := s.host(sdk.GuestLib)
	if err := unix.Mount("mcpruntime-lib", lib, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, stageSize); err != nil {
		return fmt.Errorf("bind %s: %w", sdk.GuestLib, err)
	}
	for _, m := range b.Mounts {
		dst := filepath.Join(lib, m.Rel)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("bind %s/%s: %w", sdk.GuestLib, m.Rel, err)
		}
		if err := bindMount(m.Source, dst, true); err != nil {
			return fmt.Errorf("bind %s/%s: %w", sdk.GuestLib, m.Rel, err)
		}
	}
	if err := unix.Mount("", lib, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, stageSize); err != nil {
		return fmt.Errorf("bind %s: read-only: %w", sdk.GuestLib, err)
	}
	return nil
}

// bindMount binds src on dst, read-only when ro. A bind mount's flags come
// from a second, remounting call.
func bindMount(src, dst string, ro bool) error {
	if st, err := os.Stat(src); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", src)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, dst, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", dst, err)
	}
	return nil
}
