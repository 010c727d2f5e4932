package replay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Backend snapshots (the "state snapshot ref" of a step): on backends that
// declare the snapshots capability the recorder asks the plugin to save a
// session's whole state, after every step (every_step) or when asked
// (on_demand), and resume and fork create the new session from it with
// Backend.Restore. What pickle cannot carry (a half-consumed generator, an
// open file, a socket) then comes back too, as far as the backend's
// snapshot carries it.
//
// A snapshot lives with its session: the recorder keeps the newest
// KeepSnapshots of each live session, deletes the oldest as it takes one
// more, and deletes all of a session's when the session is closed (by
// DELETE, `daemon stop`, the daemon's idle exit or the end of a one-shot
// exec). A resume or fork of a step whose snapshot is gone restores the
// pickle instead. Snapshot ids are kept by the recorder itself, never read
// back from the log (which sandbox code can write): the log's
// state_snapshot field is for people and tools, not for restores.

// Where a resumed or forked session's variables came from
// (Report.StateSource).
const (
	StateFromSnapshot = "backend_snapshot"
	StateFromPickle   = "pickle"
	StateFromNothing  = "none"
)

// SnapshotRecord is a backend snapshot the recorder took.
type SnapshotRecord struct {
	ID        string    `json:"snapshot"`
	Session   string    `json:"session"`
	Backend   string    `json:"backend"`
	Step      int       `json:"step"`
	SizeBytes int64     `json:"size_bytes"`
	Taken     time.Time `json:"taken"`
	// OnDemand: taken when asked, not after the step as it ran.
	OnDemand   bool    `json:"on_demand"`
	DurationMs float64 `json:"duration_ms"`
}

// ErrSnapshotsOff is returned when replay.snapshots is "off".
var ErrSnapshotsOff = errors.New(`backend snapshots are off (replay.snapshots = "off" in runtime.hcl)`)

// backendSnaps are the snapshots a recorder holds, per session, oldest
// first.
type backendSnaps struct {
	mu        sync.Mutex
	bySession map[string][]*SnapshotRecord
	warned    map[string]bool // backends whose deletes failed, warned once
}

// snapshotCapable reports whether backend declares the snapshots
// capability.
func (r *Recorder) snapshotCapable(ctx context.Context, backend string) bool {
	info, err := r.m.BackendInfo(ctx, backend)
	return err == nil && info != nil && info.Capabilities.Snapshots
}

// lastStep is the newest step recorded for session in this process, or
// in its log; 0 when none.
func (r *Recorder) lastStep(s *session.Session) int {
	r.mu.Lock()
	st := r.sessions[s.ID]
	if st != nil && st.next > 0 {
		n := st.next - 1
		r.mu.Unlock()
		return n
	}
	r.mu.Unlock()
	entries, _, err := Show(s.Workspace, s.ID, -1)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		n = max(n, e.Step)
	}
	return n
}

// snapshotStep takes a backend snapshot of s, which the caller holds
// (an observer), as the state after step.
func (r *Recorder) snapshotStep(ctx context.Context, s *session.Session, step int) (*SnapshotRecord, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	snap, err := r.m.SnapshotHeld(ctx, s)
	if err != nil {
		return nil, err
	}
	rec := &SnapshotRecord{ID: snap.ID, Session: s.ID, Backend: s.Backend, Step: step, SizeBytes: snap.SizeBytes,
		Taken: time.Now().UTC(), DurationMs: float64(time.Since(t0).Microseconds()) / 1000}
	r.keepSnapshot(ctx, rec)
	return rec, nil
}

// SnapshotNow takes a backend snapshot of live session sessionID now, as
// the state after its latest recorded step (on_demand; also allowed with
// every_step). It waits for an execution running in the session.
func (r *Recorder) SnapshotNow(ctx context.Context, sessionID string) (*SnapshotRecord, error) {
	if r.Snapshots == config.SnapshotsOff {
		return nil, ErrSnapshotsOff
	}
	s, err := r.m.Get(sessionID)
	if err != nil {
		return nil, err
	}
	if !r.snapshotCapable(ctx, s.Backend) {
		return nil, fmt.Errorf("snapshot %s: the %s backend does not declare the snapshots capability: %w", sessionID, s.Backend, sdk.ErrNotSupported)
	}
	// The snapshot is of the state after the latest step only if no step
	// was recorded while it was taken: otherwise take it again.
	for try := 0; try < 3; try++ {
		before := r.lastStep(s)
		if before == 0 {
			return nil, fmt.Errorf("snapshot %s: the session has no recorded step yet", sessionID)
		}
		t0 := time.Now()
		snap, err := r.m.Snapshot(ctx, s)
		if err != nil {
			return nil, err
		}
		rec := &SnapshotRecord{ID: snap.ID, Session: s.ID, Backend: s.Backend, Step: before, SizeBytes: snap.SizeBytes,
			Taken: time.Now().UTC(), OnDemand: true, DurationMs: float64(time.Since(t0).Microseconds()) / 1000}
		if r.lastStep(s) == before {
			r.keepSnapshot(ctx, rec)
			r.logger.Info("replay: snapshot taken", "session", s.ID, "step", before, "snapshot", rec.ID, "bytes", rec.SizeBytes)
			return rec, nil
		}
		r.deleteSnapshots(ctx, []*SnapshotRecord{rec}, false)
	}
	return nil, fmt.Errorf("snapshot %s: steps kept running while the snapshot was taken; try again", sessionID)
}

// keepSnapshot records rec, replacing an older one of the same step, and
// deletes the session's oldest beyond KeepSnapshots.
func (r *Recorder) keepSnapshot(ctx context.Context, rec *SnapshotRecord) {
	keep := max(1, r.KeepSnapshots)
	r.bsnaps.mu.Lock()
	list := r.bsnaps.bySession[rec.Session]
	var drop []*SnapshotRecord
	kept := list[:0]
	for _, old := range list {
		if old.Step == rec.Step {
			drop = append(drop, old)
		} else {
			kept = append(kept, old)
		}
	}
	kept = append(kept, rec)
	if n := len(kept) - keep; n > 0 {
		drop = append(drop, kept[:n]...)
		kept = append([]*SnapshotRecord(nil), kept[n:]...)
	}
	r.bsnaps.bySession[rec.Session] = kept
	r.bsnaps.mu.Unlock()
	r.deleteSnapshots(ctx, drop, false)
}

// Snapshot returns the backend snapshot the recorder holds of session's
// step, or nil.
func (r *Recorder) Snapshot(sessionID string, step int) *SnapshotRecord {
	r.bsnaps.mu.Lock()
	defer r.bsnaps.mu.Unlock()
	for _, rec := range r.bsnaps.bySession[sessionID] {
		if rec.Step == step {
			c := *rec
			return &c
		}
	}
	return nil
}

// SessionSnapshots lists the backend snapshots the recorder holds of session,
// oldest first.
func (r *Recorder) SessionSnapshots(sessionID string) []SnapshotRecord {
	r.bsnaps.mu.Lock()
	defer r.bsnaps.mu.Unlock()
	out := make([]SnapshotRecord, 0, len(r.bsnaps.bySession[sessionID]))
	for _, rec := range r.bsnaps.bySession[sessionID] {
		out = append(out, *rec)
	}
	return out
}

// sessionClosed deletes every snapshot of a session being closed (its
// plugin is still running).
func (r *Recorder) sessionClosed(ctx context.Context, s *session.Session) {
	r.bsnaps.mu.Lock()
	list := r.bsnaps.bySession[s.ID]
	delete(r.bsnaps.bySession, s.ID)
	r.bsnaps.mu.Unlock()
	if len(list) > 0 {
		r.deleteSnapshots(context.WithoutCancel(ctx), list, false)
	}
}

// deleteSnapshots frees what the snapshots hold in their backends
// (sdk.SnapshotDeleter). A backend that cannot delete (ErrNotSupported:
// contract v1) keeps them; that is logged once per backend. stale lists
// come from removed logs (retention): most of those snapshots went when
// their session closed, so failures are expected and logged at debug
// level only.
func (r *Recorder) deleteSnapshots(ctx context.Context, list []*SnapshotRecord, stale bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, rec := range list {
		err := r.deleteSnapshot(ctx, rec)
		switch {
		case err == nil:
			r.logger.Debug("replay: snapshot deleted", "session", rec.Session, "step", rec.Step, "snapshot", rec.ID, "stale", stale)
		case stale:
			if !errors.Is(err, sdk.ErrNotSupported) {
				r.logger.Debug("replay retention: backend snapshot not deleted", "session", rec.Session, "snapshot", rec.ID, "error", err)
			}
		case errors.Is(err, sdk.ErrNotSupported):
			r.bsnaps.mu.Lock()
			first := !r.bsnaps.warned[rec.Backend]
			r.bsnaps.warned[rec.Backend] = true
			r.bsnaps.mu.Unlock()
			if first {
				r.logger.Warn("replay: the backend cannot delete snapshots; they stay in its storage", "backend", rec.Backend, "snapshot", rec.ID)
			}
		default:
			r.logger.Warn("replay: delete snapshot", "session", rec.Session, "step", rec.Step, "snapshot", rec.ID, "error", err)
		}
	}
}

func (r *Recorder) deleteSnapshot(ctx context.Context, rec *SnapshotRecord) error {
	return DeleteBackendSnapshot(ctx, r.m, rec.Backend, rec.ID)
}

// RestoreStep creates session newID on backend from the backend snapshot
// of fromSession's step, if the recorder holds one; when it holds none and
// fromSession is live with step as its latest, it takes one first (not
// with snapshots off). It returns the snapshot used, or nil and why none
// was (then the caller restores the pickle).
func (r *Recorder) RestoreStep(ctx context.Context, newID, backend, fromSession string, step int) (*SnapshotRecord, string) {
	if r.Snapshots == config.SnapshotsOff {
		return nil, ErrSnapshotsOff.Error()
	}
	rec := r.Snapshot(fromSession, step)
	if rec == nil {
		s, err := r.m.Get(fromSession)
		switch {
		case err != nil:
			return nil, fmt.Sprintf("no backend snapshot of step %d: session %s is not live here and its snapshots end with it", step, fromSession)
		case !r.snapshotCapable(ctx, s.Backend):
			return nil, fmt.Sprintf("the %s backend does not declare the snapshots capability", s.Backend)
		case r.lastStep(s) != step:
			return nil, fmt.Sprintf("no backend snapshot of step %d (the live session is at step %d; snapshots are kept for the newest %d steps with every_step, or when taken with `replay snapshot`)", step, r.lastStep(s), max(1, r.KeepSnapshots))
		}
		rec, err = r.SnapshotNow(ctx, fromSession)
		if err != nil {
			return nil, "taking a backend snapshot of the live session failed: " + err.Error()
		}
		if rec.Step != step {
			return nil, fmt.Sprintf("the live session moved past step %d while it was snapshotted", step)
		}
	}
	if rec.Backend != backend {
		return nil, fmt.Sprintf("the snapshot of step %d is of backend %s, not %s", step, rec.Backend, backend)
	}
	if _, err := r.m.Open(ctx, session.Options{ID: newID, Backend: backend, Restore: rec.ID}); err != nil {
		return nil, "restoring the backend snapshot failed: " + err.Error()
	}
	return rec, ""
}
