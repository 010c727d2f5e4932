package session

import (
	"context"
	"fmt"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Closer sees a session that is being closed, before its backend destroys
// it (the replay recorder deletes the session's snapshots there). It runs
// while the session is held: it must not execute in it.
type Closer func(ctx context.Context, s *Session)

// OnClose registers c for every session closed from now on (Close and
// Shutdown).
func (m *Manager) OnClose(c Closer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closers = append(m.closers, c)
}

func (m *Manager) closing(ctx context.Context, s *Session) {
	m.mu.Lock()
	cs := append([]Closer(nil), m.closers...)
	m.mu.Unlock()
	for _, c := range cs {
		c(ctx, s)
	}
}

// Backend returns the running plugin of backend name, starting it if
// needed: for what names a snapshot rather than a session (Restore,
// DeleteSnapshot through a type assertion on sdk.SnapshotDeleter), and
// for an Observer's SnapshotHeld.
func (m *Manager) Backend(ctx context.Context, name string) (sdk.Backend, error) {
	inst, err := m.host.Backend(name)
	if err != nil {
		return nil, err
	}
	p, _, err := inst.Get(ctx)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// BackendInfo is the named backend's self-description, capabilities
// included (starting its plugin if needed).
func (m *Manager) BackendInfo(ctx context.Context, name string) (*sdk.Info, error) {
	inst, err := m.host.Backend(name)
	if err != nil {
		return nil, err
	}
	return inst.Info(ctx)
}

// Snapshot saves the full state of session s on its backend
// (sdk.ErrNotSupported without the snapshots capability), after any
// execution running in it has finished.
func (m *Manager) Snapshot(ctx context.Context, s *Session) (*sdk.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.SnapshotHeld(ctx, s)
}

// SnapshotHeld is Snapshot for a caller that already holds s: an
// Observer, which runs between the end of an execution and the next.
func (m *Manager) SnapshotHeld(ctx context.Context, s *Session) (*sdk.Snapshot, error) {
	if s.gen == 0 || !s.inst.Alive(s.gen) {
		return nil, fmt.Errorf("snapshot %s: the session is not running in its plugin (it crashed or was closed)", s.ID)
	}
	p, _, err := s.inst.Get(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := p.Snapshot(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s on %s: %w", s.ID, s.Backend, err)
	}
	return snap, nil
}
