package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
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

// slotDev is the workspace's second disk (mcpruntime.wsslot=<label>, a
// path below /dev), empty and not mounted until the host gives it a
// session's workspace image (attachSlot).
var slotDev string

// wsMountTmp is where the workspace disk is mounted before its ws
// directory is bind-mounted on the workspace.
const wsMountTmp = "/run/.wsdisk"

// wsSlotTmp is where the slot's file system is mounted before it takes
// the workspace's place.
const wsSlotTmp = "/run/.wsslot"

// mountWorkspaceDisk mounts the boot's empty workspace ext4 aside
// (mountAside), bind-mounts its ws directory on dir, and detaches the
// aside mount: code sees only the workspace, while the agent keeps an fd
// of the ballast file beside it (see quota.go), and mke2fs's lost+found
// stays out of sight.
func mountWorkspaceDisk(dev, tmp, dir string) error {
	manifest, b, err := mountAside(dev, tmp)
	if err != nil {
		return err
	}
	manifest.Close() // an empty disk has none
	if err := bindWorkspace(tmp, dir); err != nil {
		b.Close()
		return err
	}
	ballast = b
	return nil
}

// mountAside mounts the ext4 on dev at tmp (no atime writes, freed blocks
// discarded so the host's sparse file shrinks, inode tables never zeroed
// in the background), makes its ws directory, takes out the image
// manifest (proto.ImageManifest; nil if none) and opens the ballast file.
func mountAside(dev, tmp string) (manifest, b *os.File, err error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, nil, fmt.Errorf("workspace disk: %w", err)
	}
	if err := mount(dev, tmp, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "discard,noinit_itable"); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			if uerr := unix.Unmount(tmp, unix.MNT_DETACH); uerr != nil {
				logf("unmount %s: %v", tmp, uerr)
			}
		}
	}()
	ws := filepath.Join(tmp, "ws")
	if err := os.Mkdir(ws, 0o777); err != nil && !os.IsExist(err) {
		return nil, nil, fmt.Errorf("workspace disk: %w", err)
	}
	if err := os.Chmod(ws, 0o777); err != nil {
		return nil, nil, fmt.Errorf("workspace disk: %w", err)
	}
	// Opened, then unlinked: its reader (possibly in the background)
	// keeps it, and code never sees it.
	manifest, err = os.Open(filepath.Join(tmp, proto.ImageManifest))
	if err == nil {
		err = os.Remove(filepath.Join(tmp, proto.ImageManifest))
	} else if errors.Is(err, fs.ErrNotExist) {
		manifest, err = nil, nil
	}
	if err != nil {
		manifest.Close()
		return nil, nil, fmt.Errorf("workspace disk: manifest: %w", err)
	}
	b, err = os.OpenFile(filepath.Join(tmp, "ballast"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		manifest.Close()
		return nil, nil, fmt.Errorf("workspace disk: %w", err)
	}
	return manifest, b, nil
}

// bindWorkspace bind-mounts the ws directory of the file system mounted
// at tmp on dir, then detaches tmp.
func bindWorkspace(tmp, dir string) error {
	if err := unix.Mount(filepath.Join(tmp, "ws"), dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("workspace disk: bind %s: %w", dir, err)
	}
	if err := unix.Unmount(tmp, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("workspace disk: detach %s: %w", tmp, err)
	}
	_ = os.Remove(tmp)
	return nil
}

// flushDevice drops the guest's cached blocks of dev, so that what is read
// next comes from the disk's current image.
func flushDevice(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("flush %s: %w", dev, err)
	}
	return nil
}
