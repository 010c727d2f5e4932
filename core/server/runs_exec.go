package server

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/runstore"
)

// start executes run in the background, recording its progress in the
// store as it happens. A new run (create) is stored first; a resumed one
// was made running by Store.Resume and continues from history. input, for
// a new run, is loaded into its session as `context`.
func (rs *runs) start(ctx context.Context, run runstore.Run, history []agent.Turn, create bool, input *agent.Input, logger hclog.Logger) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closing {
		if !create {
			// Resume already marked it running: hand it back.
			rs.finish(run.ID, runstore.Update{Status: runstore.Interrupted, Error: errClosing.Error()}, logger)
		}
		return errClosing
	}
	if create {
		if err := rs.store.Create(ctx, run); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	a := &activeRun{cancel: cancel}
	rs.active[run.ID] = a
	rs.wg.Add(1)
	// Progress is written even when the run is being cancelled: a reply or
	// step that completed must not be lost to the race.
	spec := RunSpec{ID: run.ID, Task: run.Task, Backend: run.Backend, Session: run.Session, History: history, Input: input,
		OnReply: func(ctx context.Context, n int, reply string) error {
			return rs.store.AppendReply(context.WithoutCancel(ctx), run.ID, n, reply)
		},
		OnStep: func(ctx context.Context, n int, st *agent.Step) error {
			return rs.store.AppendStep(context.WithoutCancel(ctx), run.ID, n, st)
		},
	}
	go func() {
		defer rs.wg.Done()
		defer cancel()
		res, err := rs.run(rctx, spec)
		u := runstore.Update{Status: runstore.Done}
		if res != nil {
			b, merr := json.Marshal(res)
			switch {
			case merr != nil:
				logger.Error("run result not recorded", "run", run.ID, "error", merr)
			case string(b) != "null":
				u.Result = b
			}
		}
		rs.mu.Lock()
		byUser := a.byUser
		rs.mu.Unlock()
		switch {
		case rctx.Err() != nil && byUser:
			u.Status, u.Error = runstore.Cancelled, "cancelled"
		case rctx.Err() != nil:
			u.Status, u.Error = runstore.Interrupted, "interrupted by the server's shutdown; POST /v1/runs/"+run.ID+"/resume continues it"
		case err != nil:
			u.Status, u.Error = runstore.Failed, err.Error()
		}
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.finish(run.ID, u, logger)
	}()
	return nil
}

// finish records a run's end and forgets it (rs.mu held: Idle must not see
// the server idle before the run's status is stored).
func (rs *runs) finish(id string, u runstore.Update, logger hclog.Logger) {
	if err := rs.store.SetStatus(context.Background(), id, u); err != nil {
		logger.Error("run status not recorded", "run", id, "status", u.Status, "error", err)
	}
	delete(rs.active, id)
}

func (rs *runs) isActive(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.active[id] != nil
}

// busy reports whether this process is executing a run.
func (rs *runs) busy() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.active) > 0
}

// cancel stops run id at a user's request; false if this process is not
// running it.
func (rs *runs) cancel(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	a := rs.active[id]
	if a == nil {
		return false
	}
	a.byUser = true
	a.cancel()
	return true
}

// waitRuns checkpoints the runs still going: they are cancelled, stored as
// interrupted (resumable) with the steps they completed, and waited for;
// then the store is closed.
func (s *Server) waitRuns() {
	if s.runs == nil {
		return
	}
	s.runs.mu.Lock()
	first := !s.runs.closing
	s.runs.closing = true
	for _, a := range s.runs.active {
		a.cancel()
	}
	s.runs.mu.Unlock()
	s.runs.wg.Wait()
	if !first {
		return
	}
	if err := s.runs.store.Close(); err != nil {
		s.logger.Warn("closing the run store", "error", err)
	}
}
