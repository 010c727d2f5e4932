package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// RecoverSessions implements sdk.Recoverer: a session whose job (found by
// the session id in its meta, or in the record of a pooled job) still
// runs its kernel is adopted with its variables; the others are reported.
func (b *Backend) RecoverSessions(ctx context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	e, err := b.currentEngine()
	if err != nil {
		return nil, err
	}
	jobs, err := e.ourJobs(ctx)
	if err != nil {
		return nil, err
	}
	bySession := map[string]*api.JobListStub{}
	for _, j := range jobs {
		if j.Meta[metaInstance] == e.instance || j.Status == jobStatusDead {
			continue
		}
		sid := j.Meta[metaSession]
		if sid == "" {
			sid = e.recordedSession(ctx, j.ID)
		}
		if sid != "" {
			bySession[sid] = j
		}
	}
	out := make([]sdk.RecoveredSession, 0, len(specs))
	for _, spec := range specs {
		r := sdk.RecoveredSession{ID: spec.ID}
		j := bySession[spec.ID]
		if j == nil {
			r.Reason = "no running Nomad job of this session"
			out = append(out, r)
			continue
		}
		if err := b.sessions.Reserve(spec.ID); err != nil {
			r.Reason = err.Error()
			out = append(out, r)
			continue
		}
		s, err := e.adopt(ctx, spec, j)
		if err != nil {
			r.Reason = err.Error()
		} else {
			r.Recovered = true
		}
		_ = b.sessions.Settle(spec.ID, s, err) // err is reported in r
		out = append(out, r)
	}
	return out, nil
}

// adopt reconnects to the kernel of a running job of an earlier process.
func (e *engine) adopt(ctx context.Context, spec *sdk.SessionSpec, j *api.JobListStub) (*session, error) {
	stubs, _, err := e.c.Jobs().Allocations(j.ID, false, e.qopts(ctx))
	if err != nil {
		return nil, fmt.Errorf("allocations of job %s: %w", j.ID, err)
	}
	for _, a := range stubs {
		// Pending too: the plugin connects before the client's batched
		// status update reaches the servers.
		if a.ClientStatus != api.AllocClientStatusRunning && a.ClientStatus != api.AllocClientStatusPending {
			continue
		}
		alloc, _, err := e.c.Allocations().Info(a.ID, e.qopts(ctx))
		if err != nil {
			return nil, fmt.Errorf("allocation %s: %w", a.ID, err)
		}
		sb := &sandbox{e: e, jobID: j.ID, alloc: alloc, session: spec.ID}
		k, err := sb.connect(ctx)
		if err != nil {
			return nil, err
		}
		sb.k = k
		e.adoptOrphan(j.ID)
		if !e.track(sb) {
			sb.Kill(ctx)
			return nil, errors.New("backend is shutting down")
		}
		s := e.newSession(spec, nil)
		s.tr.cur = sb
		s.Adopt(sb)
		return s, nil
	}
	return nil, fmt.Errorf("job %s has no running allocation", j.ID)
}
