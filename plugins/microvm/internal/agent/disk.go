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

// wsDev and wsLabel are the workspace disk's device (a path below the
// new root's /dev) and ext4 label, when the workspace is on a disk.
var wsDev, wsLabel string

// wsMountTmp is where the workspace disk is mounted before its ws
// directory is bind-mounted on the workspace.
const wsMountTmp = "/run/.wsdisk"

// mountWorkspaceDisk mounts the workspace's ext4 (no atime writes,
// freed blocks discarded so the host's sparse file shrinks, inode tables
// never zeroed in the background) at tmp, bind-mounts its ws directory on
// dir, and detaches tmp: code sees only the workspace, while the agent
// keeps an fd of the ballast file beside it (see quota.go), and mke2fs's
// lost+found stays out of sight. It returns the image manifest found
// beside ws (proto.ImageManifest; nil if none), and removes it.
func mountWorkspaceDisk(dev, tmp, dir string) ([]byte, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("workspace disk: %w", err)
	}
	if err := mount(dev, tmp, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "discard,noinit_itable"); err != nil {
		return nil, err
	}
	ws := filepath.Join(tmp, "ws")
	if err := os.Mkdir(ws, 0o777); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("workspace disk: %w", err)
	}
	if err := os.Chmod(ws, 0o777); err != nil {
		return nil, fmt.Errorf("workspace disk: %w", err)
	}
	manifest, err := os.ReadFile(filepath.Join(tmp, proto.ImageManifest))
	if err == nil {
		err = os.Remove(filepath.Join(tmp, proto.ImageManifest))
	} else if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("workspace disk: manifest: %w", err)
	}
	b, err := os.OpenFile(filepath.Join(tmp, "ballast"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("workspace disk: %w", err)
	}
	if err := unix.Mount(ws, dir, "", unix.MS_BIND, ""); err != nil {
		b.Close()
		return nil, fmt.Errorf("workspace disk: bind %s: %w", dir, err)
	}
	if err := unix.Unmount(tmp, unix.MNT_DETACH); err != nil {
		b.Close()
		return nil, fmt.Errorf("workspace disk: detach %s: %w", tmp, err)
	}
	_ = os.Remove(tmp)
	ballast = b
	return manifest, nil
}

// reopenBallast gets the ballast's fd back after a failed release: the
// disk is mounted again aside (the kernel gives the same file system) and
// detached once the file is open.
func reopenBallast() error {
	if err := os.MkdirAll(wsMountTmp, 0o700); err != nil {
		return err
	}
	if err := mount(wsDev, wsMountTmp, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "discard,noinit_itable"); err != nil {
		return err
	}
	b, err := os.OpenFile(filepath.Join(wsMountTmp, "ballast"), os.O_RDWR|os.O_CREATE, 0o600)
	if uerr := unix.Unmount(wsMountTmp, unix.MNT_DETACH); err == nil && uerr != nil {
		b.Close()
		err = uerr
	}
	if err != nil {
		return err
	}
	ballast = b
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
