package backend

import "fmt"

// WorkspaceAttach reports whether session id's VM got its workspace as a
// prebuilt image at its last attach, and what that attach's push looked
// at and sent (the difference between the image and the workspace).
func (b *Backend) WorkspaceAttach(id string) (fromImage bool, push SyncStats, err error) {
	s, err := b.get(id)
	if err != nil {
		return false, push, fmt.Errorf("session %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fromImage, s.attachPush, nil
}

// WorkspaceImageReady reports whether a built image of the workspace at
// dir waits for the next session's attach.
func (b *Backend) WorkspaceImageReady(dir string) bool {
	c := b.workspaceImages()
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, img := range c.ready {
		if k.dir != dir {
			continue
		}
		select {
		case <-img.done:
			return img.err == nil
		default:
		}
	}
	return false
}
