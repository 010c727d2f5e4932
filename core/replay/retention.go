package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Background retention (replay.keep, replay.max_size): a recorder whose
// configuration sets either runs a pass over its workspaces
// retentionDelay after it starts (so a one-shot exec, which ends sooner,
// never pays for one; the session daemon and the servers do the work),
// then every retentionInterval, and soon after its own writes push a
// store's estimated size past max_size (at most once per retentionMinGap).
// Variables for the tests.
var (
	retentionDelay    = time.Minute
	retentionInterval = 10 * time.Minute
	retentionMinGap   = time.Minute
)

// retention is a recorder's background pruning.
type retention struct {
	keep    time.Duration
	maxSize int64
	// delay, interval and minGap are the timing variables as they were
	// when the recorder started.
	delay, interval, minGap time.Duration

	mu   sync.Mutex
	est  map[string]int64 // workspace → store size at the last pass plus writes since
	last time.Time        // start of the last pass
	rep  *PruneReport     // of the last pass

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startRetention starts the background pass loop if the configuration
// asks for retention.
func (r *Recorder) startRetention() {
	cfg := r.m.Config()
	if cfg == nil || (cfg.Replay.Keep <= 0 && cfg.Replay.MaxSize <= 0) {
		return
	}
	rt := &retention{keep: cfg.Replay.Keep, maxSize: cfg.Replay.MaxSize, est: map[string]int64{},
		delay: retentionDelay, interval: retentionInterval, minGap: retentionMinGap,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	r.ret = rt
	go r.retentionLoop(rt)
}

func (r *Recorder) retentionLoop(rt *retention) {
	defer close(rt.done)
	timer := time.NewTimer(rt.delay)
	defer timer.Stop()
	for {
		select {
		case <-rt.stop:
			return
		case <-timer.C:
		case <-rt.kick:
			timer.Stop()
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-rt.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		r.retentionPass(ctx, rt)
		cancel()
		timer.Reset(rt.interval)
	}
}

// retentionPass prunes every workspace the recorder has recorded in.
func (r *Recorder) retentionPass(ctx context.Context, rt *retention) {
	for _, ws := range r.workspaces() {
		rep, err := r.Prune(ctx, ws, PruneOptions{OlderThan: rt.keep, MaxSize: rt.maxSize})
		if err != nil {
			r.logger.Warn("replay retention: pass failed", "workspace", ws, "error", err)
			continue
		}
		if len(rep.Sessions) > 0 || rep.Files > 0 {
			r.logger.Info("replay retention: removed old sessions", "workspace", ws, "sessions", len(rep.Sessions),
				"files", rep.Files, "bytes", rep.Bytes, "store_bytes", rep.After, "kept_sessions", rep.Kept, "ms", rep.DurationMs)
		}
		for _, e := range rep.Errors {
			r.logger.Warn("replay retention: "+e, "workspace", ws)
		}
	}
}

// workspaces are those the recorder has recorded in, and the configured
// one.
func (r *Recorder) workspaces() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	if cfg := r.m.Config(); cfg != nil && cfg.Workspace != "" {
		seen[cfg.Workspace] = true
		out = append(out, cfg.Workspace)
	}
	for ws := range r.snaps {
		if !seen[ws] {
			seen[ws] = true
			out = append(out, ws)
		}
	}
	return out
}

// wrote counts n bytes the recorder added to workspace's store and asks
// for a pass when the store has grown past max_size.
func (r *Recorder) wrote(workspace string, n int64) {
	rt := r.ret
	if rt == nil || n <= 0 {
		return
	}
	rt.mu.Lock()
	est, known := rt.est[workspace]
	if known {
		est += n
		rt.est[workspace] = est
	}
	due := known && rt.maxSize > 0 && est > rt.maxSize && time.Since(rt.last) >= rt.minGap
	rt.mu.Unlock()
	if due {
		select {
		case rt.kick <- struct{}{}:
		default:
		}
	}
}

// Prune runs a retention pass over workspace (see Prune) that never
// removes a session live in the recorder's manager, then deletes, in
// their backends, the backend snapshots of removed steps (not those the
// recorder holds for a live session). With opts.DryRun nothing is removed
// or deleted.
func (r *Recorder) Prune(ctx context.Context, workspace string, opts PruneOptions) (*PruneReport, error) {
	live := opts.Live
	opts.Live = func(id string) bool {
		if _, err := r.m.Get(id); err == nil {
			return true
		}
		return live != nil && live(id)
	}
	start := time.Now()
	rep, err := Prune(ctx, workspace, opts)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return rep, nil
	}
	if rt := r.ret; rt != nil {
		rt.mu.Lock()
		rt.est[workspace], rt.last, rt.rep = rep.After, start, rep
		rt.mu.Unlock()
	}
	r.mu.Lock()
	for _, s := range rep.Sessions {
		if _, err := r.m.Get(s.Session); err != nil {
			delete(r.sessions, s.Session) // a new session of that name starts at step 1
		}
	}
	r.mu.Unlock()
	var drop []*SnapshotRecord
	for _, ref := range rep.BackendSnapshots {
		if r.holdsSnapshot(ref.ID) {
			continue
		}
		drop = append(drop, &SnapshotRecord{ID: ref.ID, Session: ref.Session, Backend: ref.Backend, Step: ref.Step})
	}
	if len(drop) > 0 {
		r.deleteSnapshots(ctx, drop, true)
	}
	return rep, nil
}

// holdsSnapshot reports whether id is a backend snapshot the recorder
// keeps for a live session (a removed log may name one: logs are written
// by sandbox code too).
func (r *Recorder) holdsSnapshot(id string) bool {
	r.bsnaps.mu.Lock()
	defer r.bsnaps.mu.Unlock()
	for _, list := range r.bsnaps.bySession {
		for _, rec := range list {
			if rec.ID == id {
				return true
			}
		}
	}
	return false
}

// LastPrune is the report of the recorder's last retention pass, or nil.
func (r *Recorder) LastPrune() *PruneReport {
	rt := r.ret
	if rt == nil {
		return nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.rep
}

// Close stops background retention, waiting for a pass under way to stop
// (between sessions). Recording goes on; Close is for tests and for
// callers that end the recorder before the process.
func (r *Recorder) Close() {
	rt := r.ret
	if rt == nil {
		return
	}
	rt.stopOnce.Do(func() { close(rt.stop) })
	<-rt.done
}

// DeleteBackendSnapshot deletes snapshot id in backend through m (the
// backend's plugin is started if it is not running). A backend that
// cannot delete snapshots returns an error matching sdk.ErrNotSupported.
func DeleteBackendSnapshot(ctx context.Context, m *session.Manager, backend, id string) error {
	b, err := m.Backend(ctx, backend)
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	d, ok := b.(sdk.SnapshotDeleter)
	if !ok {
		return fmt.Errorf("delete snapshot %s: %w", id, sdk.ErrNotSupported)
	}
	if err := d.DeleteSnapshot(ctx, id); err != nil {
		if errors.Is(err, sdk.ErrNotSupported) || strings.Contains(err.Error(), sdk.ErrNotSupported.Error()) {
			return fmt.Errorf("delete snapshot %s: %w", id, sdk.ErrNotSupported)
		}
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}
