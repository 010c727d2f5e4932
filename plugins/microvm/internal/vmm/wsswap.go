package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The workspace disks' block nodes: each device reads a raw format node,
// whose file child is the disk made at boot. A swap points the slot's
// format node at an image that already holds a session's workspace.
const (
	wsFormatNode   = "ws"
	wsBootNode     = "ws-file"
	wsSlotNode     = "ws-slot"
	wsSlotBootNode = "ws-slot-file"
	wsImageNode    = "ws-image"
)

// wsFileNode is the -blockdev option string of a workspace file node.
// cache.no-flush: the disk is scratch (the host workspace is the copy that
// counts), so guest flushes need not reach the host's disk.
func wsFileNode(name, path string) string {
	return "driver=file,node-name=" + name + ",filename=" + strings.ReplaceAll(path, ",", ",,") +
		",discard=unmap,cache.direct=off,cache.no-flush=on"
}

// ErrNoSwap is returned by SwapWorkspaceDisk when the VM cannot take an
// image: it has no slot disk, its slot was swapped already, or it was
// restored or adopted (its guest's use of the slot is not known).
var ErrNoSwap = errors.New("the VM's workspace slot cannot be swapped")

// WorkspaceSwapper is a Machine whose workspace slot disk can be given
// another image while it runs.
type WorkspaceSwapper interface {
	// SwapWorkspaceDisk makes image (a file of the disk's size, on the
	// file system of the VM's directory) the content of the VM's
	// workspace slot disk (Spec.WorkspaceSlot), and moves it to the
	// slot's place in the VM's directory (what snapshots copy). The guest
	// must not have the slot mounted, and must drop what it cached of it
	// before mounting it.
	SwapWorkspaceDisk(ctx context.Context, image string) error
}

// SwapWorkspaceDisk implements WorkspaceSwapper: QMP blockdev-add of a
// file node for the image, blockdev-reopen of the slot's format node with
// it as its file, blockdev-del of the old file node (QEMU closes the empty
// slot), then the image is renamed over the slot's path.
func (m *qemuMachine) SwapWorkspaceDisk(ctx context.Context, image string) error {
	if m.slot == "" || m.swapped {
		return ErrNoSwap
	}
	st, err := os.Stat(m.slot)
	if err != nil {
		return fmt.Errorf("swap workspace disk: %w", err)
	}
	ist, err := os.Stat(image)
	if err != nil {
		return fmt.Errorf("swap workspace disk: %w", err)
	}
	if ist.Size() != st.Size() {
		// The guest's device keeps the size it probed at boot.
		return fmt.Errorf("swap workspace disk: the image has %d bytes, the disk %d", ist.Size(), st.Size())
	}
	add := map[string]any{
		"driver": "file", "node-name": wsImageNode, "filename": image, "discard": "unmap",
		"cache": map[string]any{"direct": false, "no-flush": true},
	}
	if _, err := m.qmp.exec(ctx, "blockdev-add", add, nil); err != nil {
		return fmt.Errorf("swap workspace disk: %w", err)
	}
	reopen := map[string]any{"options": []any{map[string]any{
		"driver": "raw", "node-name": wsSlotNode, "file": wsImageNode, "discard": "unmap",
		"cache": map[string]any{"direct": false, "no-flush": true},
	}}}
	if _, err := m.qmp.exec(ctx, "blockdev-reopen", reopen, nil); err != nil {
		if _, derr := m.qmp.exec(ctx, "blockdev-del", map[string]any{"node-name": wsImageNode}, nil); derr != nil {
			err = fmt.Errorf("%w (and the image's node stays: %v)", err, derr)
		}
		return fmt.Errorf("swap workspace disk: %w", err)
	}
	m.swapped = true
	if _, err := m.qmp.exec(ctx, "blockdev-del", map[string]any{"node-name": wsSlotBootNode}, nil); err != nil {
		return fmt.Errorf("swap workspace disk: release the old disk: %w", err)
	}
	if err := os.Rename(image, m.slot); err != nil {
		return fmt.Errorf("swap workspace disk: %w", err)
	}
	return nil
}
