package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Containers are created before the session they will serve is known (the
// warm pool), so their workspace and library mounts cannot be in the OCI
// spec. Instead each container bind-mounts a per-container "slot" directory
// of the host with slave propagation, and the slots live in a shared mount:
// whatever the plugin later mounts into a slot on the host appears inside
// the running container at once.

// ensureShared makes dir a mount point with shared propagation.
func ensureShared(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	shared, mounted, err := propagation(dir)
	if err != nil {
		return err
	}
	if shared {
		return nil
	}
	if !mounted {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// propagation reports whether dir is a mount point and whether it is shared.
func propagation(dir string) (shared, mounted bool, err error) {
	mounts, err := mountInfo()
	if err != nil {
		return false, false, err
	}
	for _, m := range mounts {
		if m.point == dir {
			mounted = true
			shared = strings.Contains(m.optional, "shared:")
		}
	}
	return shared, mounted, nil
}

type mountEntry struct {
	point    string
	optional string
}

func mountInfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		var opt []string
		for _, f := range fields[6:] {
			if f == "-" {
				break
			}
			opt = append(opt, f)
		}
		out = append(out, mountEntry{point: unescapeMount(fields[4]), optional: strings.Join(opt, " ")})
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// bindInto mounts src at dst (a directory in a slot), read-only if asked.
// A read-only mount is built detached and flagged before it is attached,
// because flags changed by a later remount would not propagate into the
// container, while a mount's flags are copied with it.
func bindInto(src, dst string, readOnly bool) error {
	if !readOnly {
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", src, dst, err)
		}
		return nil
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone mount of %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("make mount of %s read-only: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach %s at %s: %w", src, dst, err)
	}
	return nil
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	mounts, err := mountInfo()
	if err != nil {
		return err
	}
	var points []string
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, m := range mounts {
		if m.point == dir || strings.HasPrefix(m.point, prefix) {
			points = append(points, m.point)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var first error
	for _, p := range slices.Compact(points) {
		for range 8 { // stacked mounts: once per layer
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				if err != unix.EINVAL && err != unix.ENOENT && first == nil {
					first = fmt.Errorf("unmount %s: %w", p, err)
				}
				break
			}
		}
	}
	return first
}

// removeSlot unmounts everything in a slot and deletes it.
func removeSlot(dir string) error {
	err := unmountUnder(dir)
	if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// slotPaths are the host directories of one container's slot.
type slotPaths struct{ root string }

func (s slotPaths) workspace() string { return filepath.Join(s.root, "workspace") }
func (s slotPaths) lib() string       { return filepath.Join(s.root, "lib") }
func (s slotPaths) state() string     { return filepath.Join(s.root, "state") }

// channel holds the kernel's channel FIFOs (see initproc.ChannelEnv).
func (s slotPaths) channel() string { return filepath.Join(s.root, "channel") }

// record is the session the container serves (see recover.go).
func (s slotPaths) record() string { return filepath.Join(s.root, "session.json") }
