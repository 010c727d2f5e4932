package backend

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// errPlacementLost is a placement whose allocation was lost or failed
// before it ran (a node that died under it): the caller places again.
var errPlacementLost = errors.New("allocation lost before it ran")

// newJobID names a sandbox job: the engine's prefix and a random part.
func (e *engine) newJobID() string {
	return e.jobPrefix() + strings.ToLower(rand.Text()[:10])
}

// place registers a sandbox job and waits until its task runs, then
// connects to its kernel. A placement whose node dies before the task
// runs is retried with a new job while the placement timeout lasts.
func (e *engine) place(ctx context.Context, session string, memory int64) (*sandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, e.s.placementTimeout)
	defer cancel()
	for {
		sb, err := e.placeOnce(ctx, session, memory)
		if !errors.Is(err, errPlacementLost) || ctx.Err() != nil {
			return sb, err
		}
		e.log.Warn("allocation lost before it ran; placing again", "error", err)
	}
}

func (e *engine) placeOnce(ctx context.Context, session string, memory int64) (*sandbox, error) {
	id := e.newJobID()
	t0 := time.Now()
	if _, _, err := e.c.Jobs().Register(e.job(ctx, jobSpec{id: id, session: session, memory: memory}), e.wopts(ctx)); err != nil {
		return nil, fmt.Errorf("register job %s: %w", id, err)
	}
	alloc, err := e.waitPlaced(ctx, id)
	if err != nil {
		e.purge(id)
		return nil, err
	}
	sb := &sandbox{e: e, jobID: id, alloc: alloc, session: session}
	k, err := e.connectWhenRunning(ctx, sb)
	if err != nil {
		e.purge(id)
		return nil, err
	}
	sb.k = k
	if !e.track(sb) {
		sb.Kill(ctx)
		return nil, errors.New("backend is shutting down")
	}
	e.log.Debug("sandbox placed", "job", id, "node", alloc.NodeName, "took", time.Since(t0))
	return sb, nil
}

// connectAttempt bounds one attempt to reach a placed allocation's kernel.
// An attempt that gets no answer is tried again while the placement
// timeout lasts: a kernel still starting answers the next one, and an
// attempt whose relay got stuck (seen in CI: an exec into a task that had
// just started never carried the kernel's answer) does not hold the
// session's whole budget.
const connectAttempt = 10 * time.Second

// connectWhenRunning connects to the kernel of a placed allocation as soon
// as its task runs: the client reports the task's start to the servers in
// batches (a few hundred milliseconds later), so the exec is tried right
// away and again until it succeeds or the allocation ends.
func (e *engine) connectWhenRunning(ctx context.Context, sb *sandbox) (*channel, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, connectAttempt)
		k, err := sb.connect(actx)
		unanswered := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err == nil {
			return k, nil
		}
		a, _, ierr := e.c.Allocations().Info(sb.alloc.ID, e.qopts(ctx))
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("allocation %s on node %s: %w (last: %v)", shortID(sb.alloc.ID), sb.alloc.NodeName, ctx.Err(), err)
		case ierr != nil:
			return nil, fmt.Errorf("allocation %s: %w", shortID(sb.alloc.ID), ierr)
		case a.ClientStatus == api.AllocClientStatusLost:
			return nil, fmt.Errorf("%w: allocation %s on node %s", errPlacementLost, a.ID, a.NodeName)
		case a.ClientStatus == api.AllocClientStatusFailed || a.ClientStatus == api.AllocClientStatusComplete:
			return nil, fmt.Errorf("allocation %s on node %s %s before the kernel ran: %s", shortID(a.ID), a.NodeName, a.ClientStatus, taskEvents(a.TaskStates[taskName]))
		case unanswered:
			// Still placed, and the kernel did not answer: try again.
			e.log.Warn("no answer from the kernel yet; connecting again", "alloc", shortID(a.ID), "node", a.NodeName, "error", err)
		case a.TaskStates[taskName] != nil && a.TaskStates[taskName].State == taskStateRunning:
			// Running, yet the channel failed: not a start-up race.
			return nil, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitPlaced follows the job's allocations (blocking queries) until one
// is placed on a node, and says why when none can be.
func (e *engine) waitPlaced(ctx context.Context, id string) (*api.Allocation, error) {
	var index uint64
	for {
		q := e.qopts(ctx)
		q.WaitIndex, q.WaitTime = index, 5*time.Second
		stubs, meta, err := e.c.Jobs().Allocations(id, true, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil, e.placementError(id, ctx.Err())
			}
			return nil, fmt.Errorf("allocations of job %s: %w", id, err)
		}
		index = meta.LastIndex
		for _, a := range stubs {
			ts := a.TaskStates[taskName]
			switch {
			case a.NodeID != "" && (a.ClientStatus == api.AllocClientStatusPending || a.ClientStatus == api.AllocClientStatusRunning):
				alloc, _, err := e.c.Allocations().Info(a.ID, e.qopts(ctx))
				if err != nil {
					return nil, fmt.Errorf("allocation %s: %w", a.ID, err)
				}
				return alloc, nil
			case a.ClientStatus == api.AllocClientStatusLost:
				return nil, fmt.Errorf("%w: allocation %s on node %s", errPlacementLost, a.ID, a.NodeName)
			case a.ClientStatus == api.AllocClientStatusFailed || a.ClientStatus == api.AllocClientStatusComplete:
				return nil, fmt.Errorf("allocation %s on node %s %s before the kernel ran: %s", a.ID, a.NodeName, a.ClientStatus, taskEvents(ts))
			}
		}
		if ctx.Err() != nil {
			return nil, e.placementError(id, ctx.Err())
		}
	}
}

// placementError says why a job has no running allocation: the
// scheduler's reasons (no node matches, not enough memory) when it has them.
func (e *engine) placementError(id string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evals, _, err := e.c.Jobs().Evaluations(id, e.qopts(ctx))
	if err == nil {
		for _, ev := range evals {
			for tg, m := range ev.FailedTGAllocs {
				return fmt.Errorf("job %s: group %s could not be placed (%s): %s", id, tg, cause, describeMetric(m))
			}
		}
	}
	return fmt.Errorf("job %s: no running allocation: %w", id, cause)
}

func describeMetric(m *api.AllocationMetric) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d nodes evaluated, %d filtered, %d exhausted", m.NodesEvaluated, m.NodesFiltered, m.NodesExhausted))
	for k, v := range m.ConstraintFiltered {
		parts = append(parts, fmt.Sprintf("constraint %s filtered %d", k, v))
	}
	for k, v := range m.DimensionExhausted {
		parts = append(parts, fmt.Sprintf("%s exhausted on %d", k, v))
	}
	if m.NodesEvaluated == 0 {
		parts = append(parts, "no eligible nodes (datacenters, node pool, drivers)")
	}
	return strings.Join(parts, "; ")
}

// taskEvents is the end of a task's event list, for a person.
func taskEvents(ts *api.TaskState) string {
	if ts == nil {
		return "no task events"
	}
	var out []string
	evs := ts.Events
	if len(evs) > 4 {
		evs = evs[len(evs)-4:]
	}
	for _, ev := range evs {
		msg := ev.DisplayMessage
		if msg == "" {
			msg = ev.Message
		}
		out = append(out, ev.Type+": "+msg)
	}
	return strings.Join(out, "; ")
}

// purge stops and purges a job, in the background of any caller's
// context (a cancelled session creation must still free its job).
func (e *engine) purge(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := e.c.Jobs().Deregister(id, true, e.wopts(ctx)); err != nil {
		e.log.Warn("purge job", "job", id, "error", err)
	}
}

func (e *engine) qopts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Namespace: e.namespace}).WithContext(ctx)
}

func (e *engine) wopts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{Namespace: e.namespace}).WithContext(ctx)
}
