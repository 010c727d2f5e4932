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

// workspaceOnDisk: the workspace is an ext4 on a disk of its own (the host
// asked with mcpruntime.wsdisk=<label>), not a tmpfs; it is bounded by
// that disk, so the tmpfs quota does not apply.
var workspaceOnDisk bool

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

// mountWorkspaceDisk mounts the workspace's ext4 at dir: no atime writes,
// freed blocks discarded (the host's sparse file shrinks), inode tables
// never zeroed in the background (an empty disk needs none of that work).
func mountWorkspaceDisk(dev, dir string) error {
	if err := mount(dev, dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "discard,noinit_itable"); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("workspace disk: %w", err)
	}
	// mke2fs made it; it would show up in the host's workspace.
	if err := os.Remove(filepath.Join(dir, "lost+found")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("workspace disk: %w", err)
	}
	workspaceOnDisk = true
	return nil
}
