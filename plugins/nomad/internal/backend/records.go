package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

// A pooled allocation is placed before its session exists, and changing a
// job's meta would replace its allocation. So the session a pooled job
// serves is recorded in a Nomad variable beside it, which recovery reads;
// jobs placed for a session carry it in their meta.

func (e *engine) varPath(jobID string) string { return "mcpruntime/sessions/" + jobID }

// record notes that jobID serves session.
func (e *engine) record(ctx context.Context, jobID, session string) error {
	v := &api.Variable{Namespace: e.namespace, Path: e.varPath(jobID), Items: api.VariableItems{"session": session, "owner": e.owner}}
	if _, _, err := e.c.Variables().Create(v, e.wopts(ctx)); err != nil {
		return fmt.Errorf("record session %s of job %s: %w", session, jobID, err)
	}
	return nil
}

// unrecord removes a job's record (it may have none).
func (e *engine) unrecord(jobID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.c.Variables().Delete(e.varPath(jobID), e.wopts(ctx)); err != nil {
		e.log.Debug("remove session record", "job", jobID, "error", err)
	}
}

// recordedSession is the session a pooled job was claimed by ("" if none).
func (e *engine) recordedSession(ctx context.Context, jobID string) string {
	v, _, err := e.c.Variables().Read(e.varPath(jobID), e.qopts(ctx))
	if err != nil || v == nil || v.Items["owner"] != e.owner {
		return ""
	}
	return v.Items["session"]
}
