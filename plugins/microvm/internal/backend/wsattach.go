package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// workspaceImages returns the image cache (nil when images are off).
func (b *Backend) workspaceImages() *wsImages {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.images
}

// A workspace smaller than both bounds is sent file by file: swapping
// the slot costs a few round trips and a mount (~15 ms under TCG), about
// what sending a few dozen small files does.
const (
	imageMinEntries = 64
	imageMinBytes   = 4 << 20
)

// attachImage gives a pooled VM the session's workspace as a prebuilt
// disk image: QEMU points the VM's empty slot disk at the image, the agent
// mounts it in place of the (empty) boot workspace and takes the image's
// manifest as its baseline, and the syncer takes the image's entries as
// what the guest holds, so the push that follows sends only what changed
// since the image was built. It reports false, with the VM as it was (an
// empty workspace), when the image path is not available: the push then
// sends every file as before. An error means the VM is unusable.
func (s *session) attachImage(ctx context.Context, v *vm) (bool, error) {
	c := s.b.workspaceImages()
	sw, ok := v.m.(vmm.WorkspaceSwapper)
	if c == nil || !ok || s.spec.Workspace == "" {
		return false, nil
	}
	t0 := time.Now()
	img, err := c.take(ctx, s.spec.Workspace, s.b.vmSpec(v.id).WorkspaceMiB)
	if err != nil {
		s.b.log.Warn("no workspace image: the files are sent instead", "session", s.spec.ID, "error", err)
		return false, nil
	}
	if img.cost() > s.ws.max {
		img.discard() // the push reports the workspace too large
		return false, nil
	}
	if len(img.entries) < imageMinEntries && img.cost() < imageMinBytes {
		// Sending a few small files costs less than swapping disks.
		img.discard()
		return false, nil
	}
	t1 := time.Now()
	if err := sw.SwapWorkspaceDisk(ctx, img.path); err != nil {
		// The guest never saw the slot change: its workspace is as it was.
		img.discard()
		if !errors.Is(err, vmm.ErrNoSwap) {
			s.b.log.Warn("workspace image not swapped in: the files are sent instead", "session", s.spec.ID, "error", err)
		}
		return false, nil
	}
	t2 := time.Now()
	mr, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpWorkspaceAttach})
	if err != nil {
		return false, fmt.Errorf("mount the workspace image: %w", err)
	}
	t3 := time.Now()
	s.ws.reset()
	for _, e := range img.entries {
		s.ws.setKnown(e.Rel, stateOf(e.Info))
	}
	if img.w != nil {
		// The image's change tracking becomes the session's: the push
		// looks only at what changed since the build listed it.
		s.ws.w.Close()
		s.ws.w, s.ws.full = img.w, false
	}
	s.b.log.Debug("workspace image attached", "session", s.spec.ID, "entries", len(img.entries),
		"take", t1.Sub(t0), "swap", t2.Sub(t1), "mount", t3.Sub(t2), "guest", string(mr.Data))
	return true, nil
}
