package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// benchSnapshots measures what replay.snapshots = "every_step" adds to a
// recorded step on a backend with the snapshots capability: the same
// step in one session, recorded with snapshots off and every_step in
// alternation (so drift hits both alike), timed as its caller sees it
// (the execution, the workspace snapshot, the backend snapshot and the
// fsynced log line; the state pickle is saved after and not timed).
func benchSnapshots(ctx context.Context, m *session.Manager, logger hclog.Logger, backend string, n int) ([]benchRow, error) {
	info, err := m.BackendInfo(ctx, backend)
	if err != nil || !info.Capabilities.Snapshots {
		return nil, nil
	}
	rec := replay.Record(m, logger)
	rec.KeepSnapshots = 2
	s, err := m.Open(ctx, session.Options{ID: session.NewID() + "-bench", Backend: backend})
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = m.Close(context.WithoutCancel(ctx), s.ID)
		if err := os.Remove(replay.LogPath(s.Workspace, s.ID)); err != nil {
			logger.Warn("bench: remove the replay log", "error", err)
		}
	}()
	step := func(mode string) (time.Duration, error) {
		rec.Snapshots = mode
		start := time.Now()
		res, err := m.Exec(ctx, s, "x = globals().get('x', 0) + 1", 0, func(sdk.Event) {})
		d := time.Since(start)
		rec.Wait()
		if err != nil {
			return 0, err
		}
		if !res.OK() {
			return 0, fmt.Errorf("bench step failed: %s", res.Message)
		}
		return d, nil
	}
	var off, every []time.Duration
	for i := range n * 2 {
		mode := config.SnapshotsOff
		if i%2 == 1 {
			mode = config.SnapshotsEveryStep
		}
		d, err := step(mode)
		if err != nil {
			return nil, err
		}
		if mode == config.SnapshotsOff {
			off = append(off, d)
		} else {
			every = append(every, d)
		}
	}
	if st := rec.Stats(); st.Snapshots != len(every) {
		return nil, fmt.Errorf("bench: %d of %d steps were snapshotted", st.Snapshots, len(every))
	}
	base := summarize("recorded step, replay.snapshots off", off)
	return []benchRow{base, compare(summarize("recorded step, replay.snapshots every_step", every), &base)}, nil
}
