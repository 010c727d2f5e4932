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
