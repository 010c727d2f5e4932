package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The guest's copy of the workspace lives on a disk of its own, not in
// guest memory: a sparse raw file per VM holding an empty ext4 (label
// WorkspaceLabel, no journal, inode tables left for the kernel to treat
// as unused), attached as a second virtio-blk device. The guest's page
// cache holds what it reads, and gives it back under memory pressure, so
// a workspace larger than the VM's memory works. Deleted blocks are
// discarded (the guest mounts with -o discard, QEMU punches holes), so the
// file holds about what the workspace does. A snapshot copies it (its
// data only) next to the saved state: the restored guest's file system
// must find on its disk what its memory says is there.

// WorkspaceDiskFile is the disk's name in a VM's and a snapshot's directory.
const WorkspaceDiskFile = "workspace.img"

// WorkspaceSlotFile is the slot disk's name (Spec.WorkspaceSlot) in a
// VM's and a snapshot's directory.
const WorkspaceSlotFile = "workspace-slot.img"

// WorkspaceLabel is the ext4 label the agent looks for; WorkspaceSlotLabel
// marks the empty slot disk until an image (labelled WorkspaceLabel)
// takes its place.
const (
	WorkspaceLabel     = "mcpruntime-ws"
	WorkspaceSlotLabel = "mcpruntime-slot" // ext4 labels hold 16 bytes
)

// makeWorkspaceDisk writes an empty ext4 of mib MiB labelled
// WorkspaceLabel into a sparse file.
func makeWorkspaceDisk(ctx context.Context, path string, mib int) error {
	return makeExt4(ctx, path, mib, WorkspaceLabel)
}

// makeExt4 writes an empty ext4 of mib MiB into a sparse file.
func makeExt4(ctx context.Context, path string, mib int, label string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("workspace disk: %w", err)
	}
	err = f.Truncate(int64(mib) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("workspace disk: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", label,
		"-m", "0", "-b", "4096", "-E", "lazy_itable_init=1,nodiscard,root_owner=0:0", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("workspace disk: mke2fs (is e2fsprogs installed?): %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copySparse copies src to dst (created), only the data extents: holes
// stay holes. It returns how many bytes of data it copied.
func copySparse(dst, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := copyExtents(out, in, fi.Size())
	if err == nil {
		err = out.Truncate(fi.Size())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return 0, fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return n, nil
}

func copyExtents(out, in *os.File, size int64) (int64, error) {
	var total int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return total, fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return total, fmt.Errorf("seek hole: %w", err)
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return total, err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return total, err
		}
		n, err := io.CopyN(out, in, hole-data)
		total += n
		if err != nil {
			return total, err
		}
		off = hole
	}
	return total, nil
}

// makeExt4IfAbsent makes an empty ext4 at path unless a file is there
// (a restore copied the snapshot's).
func makeExt4IfAbsent(ctx context.Context, path string, mib int, label string) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return makeExt4(ctx, path, mib, label)
}
