package agent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// rootLabel is the ext4 label of the read-only Python root (image package).
const rootLabel = "mcpruntime-py"

// ballast is set when the workspace is an ext4 on a disk of its own (the
// host asked with mcpruntime.wsdisk=<label>), not a tmpfs: a file beside
// the workspace, out of code's reach, whose allocated size takes up what
// the disk has beyond the host's free space (quota.go).
var ballast *os.File

// ext4Label reads the volume label of the ext4 on dev ("" if none).
func ext4Label(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	sb := make([]byte, 136)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return ""
	}
	if binary.LittleEndian.Uint16(sb[56:58]) != 0xEF53 {
		return ""
	}
	return string(bytes.TrimRight(sb[120:136], "\x00"))
}

// findDisks waits until every label is on one of the virtio disks and
// returns their devices (the order the VMM probes them in is not the
// order they were given in).
func findDisks(d time.Duration, labels ...string) (map[string]string, error) {
	deadline := time.Now().Add(d)
	for {
		found := map[string]string{}
		devs, _ := filepath.Glob("/dev/vd[a-z]")
		for _, dev := range devs {
			if l := ext4Label(dev); l != "" {
				found[l] = dev
			}
		}
		missing := ""
		for _, l := range labels {
			if found[l] == "" {
				missing = l
			}
		}
		if missing == "" {
			return found, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no disk labelled %s appeared within %s (found %v)", missing, d, found)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mountWorkspaceDisk mounts the workspace's ext4 (no atime writes,
// freed blocks discarded so the host's sparse file shrinks, inode tables
// never zeroed in the background) at tmp, bind-mounts its ws directory on
// dir, and detaches tmp: code sees only the workspace, while the agent
// keeps an fd of the ballast file beside it (see quota.go), and mke2fs's
// lost+found stays out of sight.
func mountWorkspaceDisk(dev, tmp, dir string) error {
	if err := mount(dev, tmp, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "discard,noinit_itable"); err != nil {
		return err
	}
	ws := filepath.Join(tmp, "ws")
	if err := os.Mkdir(ws, 0o777); err != nil && !os.IsExist(err) {
		return fmt.Errorf("workspace disk: %w", err)
	}
	if err := os.Chmod(ws, 0o777); err != nil {
		return fmt.Errorf("workspace disk: %w", err)
	}
	b, err := os.OpenFile(filepath.Join(tmp, "ballast"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("workspace disk: %w", err)
	}
	if err := unix.Mount(ws, dir, "", unix.MS_BIND, ""); err != nil {
		b.Close()
		return fmt.Errorf("workspace disk: bind %s: %w", dir, err)
	}
	if err := unix.Unmount(tmp, unix.MNT_DETACH); err != nil {
		b.Close()
		return fmt.Errorf("workspace disk: detach %s: %w", tmp, err)
	}
	_ = os.Remove(tmp)
	ballast = b
	return nil
}
