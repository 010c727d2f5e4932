package backend

import "fmt"

// SyncStats is what one workspace push (before an execution) or pull
// (after it) touched: entries looked at (on the host for a push, in the
// guest for a pull), files sent or copied back, paths removed.
type SyncStats = syncStats

// WorkspaceSync reports what the last push and pull of session id
// touched (tests and benchmarks count the per-execution transfer).
func (b *Backend) WorkspaceSync(id string) (push, pull SyncStats, err error) {
	s, err := b.get(id)
	if err != nil {
		return push, pull, fmt.Errorf("session %s: %w", id, err)
	}
	return s.ws.pushStats, s.ws.pullStats, nil
}

// WorkspaceSettled returns a channel closed once no large workspace file
// of session id is still being sent to its VM in the background.
func (b *Backend) WorkspaceSettled(id string) (<-chan struct{}, error) {
	s, err := b.get(id)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	return s.ws.settled(), nil
}
