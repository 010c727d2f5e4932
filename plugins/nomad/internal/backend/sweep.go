package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
)

// ourJobs lists the jobs of this engine's owner, any instance.
func (e *engine) ourJobs(ctx context.Context) ([]*api.JobListStub, error) {
	q := e.qopts(ctx)
	q.Prefix = e.jobPrefix()
	// Job meta is in the listing only when asked for.
	stubs, _, err := e.c.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, q)
	if err != nil {
		return nil, fmt.Errorf("list jobs %s*: %w", e.jobPrefix(), err)
	}
	var out []*api.JobListStub
	for _, j := range stubs {
		if j.Meta[metaOwner] == e.owner {
			out = append(out, j)
		}
	}
	return out, nil
}

// sweep removes what earlier processes of this owner left: their pooled
// allocations and finished jobs at once, their sessions' jobs once the
// recovery grace has passed without a RecoverSessions adopting them.
func (e *engine) sweep(ctx context.Context) error {
	jobs, err := e.ourJobs(ctx)
	if err != nil {
		return err
	}
	var gone []string
	for _, j := range jobs {
		if j.Meta[metaInstance] == e.instance {
			continue
		}
		session := j.Meta[metaSession]
		if session == "" && j.Status != jobStatusDead {
			session = e.recordedSession(ctx, j.ID)
		}
		if session == "" || j.Status == jobStatusDead || e.s.recoveryGrace == 0 {
			gone = append(gone, j.ID)
			continue
		}
		e.orphans[j.ID] = j
	}
	e.purgeAll(gone)
	e.sweepRecords(ctx, jobs)
	if len(e.orphans) > 0 {
		e.log.Info("jobs of sessions of an earlier plugin process kept for recovery", "jobs", len(e.orphans), "grace", e.s.recoveryGrace)
		time.AfterFunc(e.s.recoveryGrace, e.sweepOrphans)
	}
	if len(gone) > 0 {
		e.log.Info("swept leftover jobs of an earlier plugin process", "jobs", len(gone))
	}
	return nil
}

// sweepOrphans purges the orphaned session jobs nobody recovered.
func (e *engine) sweepOrphans() {
	e.mu.Lock()
	var gone []string
	for id := range e.orphans {
		gone = append(gone, id)
	}
	e.orphans = map[string]*api.JobListStub{}
	e.mu.Unlock()
	if len(gone) > 0 {
		e.log.Info("purging session jobs not recovered within the grace", "jobs", len(gone))
	}
	e.purgeAll(gone)
}

// adoptOrphan takes a job out of the orphans (it is recovered).
func (e *engine) adoptOrphan(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.orphans, id)
}

func (e *engine) purgeAll(ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			e.purge(id)
			e.unrecord(id)
		})
	}
	wg.Wait()
}

// sweepRecords removes the session records of this owner's jobs that no
// longer exist (a job purged while no plugin ran).
func (e *engine) sweepRecords(ctx context.Context, jobs []*api.JobListStub) {
	exists := map[string]bool{}
	for _, j := range jobs {
		exists[j.ID] = true
	}
	vars, _, err := e.c.Variables().PrefixList(e.varPath(e.jobPrefix()), e.qopts(ctx))
	if err != nil {
		e.log.Warn("list session records", "error", err)
		return
	}
	for _, v := range vars {
		id := strings.TrimPrefix(v.Path, e.varPath(""))
		if !exists[id] {
			e.unrecord(id)
		}
	}
}
