package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// Recovery (sdk.Recoverer). A session's container, its task and its kernel
// outlive the plugin process: containerd's shim holds the task, and the
// kernel holds both ends of its channel FIFOs (see kerneltask.go). After a
// plugin restart, RecoverSessions finds each session's container by the
// record its slot keeps (session id and workspace: two cores on one host
// may both have a session "s1", never with one workspace), takes it over
// from the dead owner, re-opens the kernel's channel and adopts the kernel
// with its variables.
//
// A session is recovered only with its variables: a container whose kernel
// did not survive (or would not come to rest) is removed and reported not
// recovered, so the core answers the session's next execution with
// state_lost, as for a session whose container is gone.
//
// Between the crash and RecoverSessions the sweep (sweep.go) must not take
// the containers: a dead owner's session containers are kept for the
// recovery grace of the plugin that created them (recovery_grace, in the
// record), counted from the first sweep that found them orphaned, and
// removed by a later sweep when nobody recovered them. The grace is for
// other cores: when the core that started the dead plugin process starts
// the next one, its RecoverSessions offers every session it holds, and
// its other containers go at once (releaseUnclaimed).

// sessionRecord is what a slot says about the session its container
// serves. It lives in the slot's root, which no container sees.
type sessionRecord struct {
	ID        string        `json:"id"`
	Workspace string        `json:"workspace"`
	Grace     time.Duration `json:"grace"`
	// Core is the process that started the plugin which created the
	// container (coreID): once that core has said which sessions it
	// holds, its other containers are nobody's.
	Core string `json:"core,omitempty"`
}

func writeRecord(slot slotPaths, r sessionRecord) error {
	js, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("session record: %w", err)
	}
	tmp := slot.record() + ".tmp"
	if err := os.WriteFile(tmp, js, 0o600); err != nil {
		return fmt.Errorf("session record: %w", err)
	}
	if err := os.Rename(tmp, slot.record()); err != nil {
		return fmt.Errorf("session record: %w", err)
	}
	return nil
}

// readRecord reads a slot's record; ok is false for a container that
// serves no session (pooled, anchor) or whose slot is gone.
func readRecord(slot slotPaths) (sessionRecord, bool) {
	var r sessionRecord
	js, err := os.ReadFile(slot.record())
	if err != nil || json.Unmarshal(js, &r) != nil || r.ID == "" {
		return r, false
	}
	return r, true
}

// orphanedSince is when a sweep first found a session container's owner
// dead: the first sweep stamps it in the slot.
func orphanedSince(slot slotPaths, now time.Time) (time.Time, error) {
	p := filepath.Join(slot.root, "orphaned")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, werr := f.WriteString(strconv.FormatInt(now.UnixNano(), 10))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return now, fmt.Errorf("stamp orphaned container: %w", werr)
		}
		return now, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return now, fmt.Errorf("stamp orphaned container: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return now, fmt.Errorf("orphaned container stamp: %w", err)
	}
	ns, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// Torn by a crash between create and write: the file's time will do.
		if st, serr := os.Stat(p); serr == nil {
			return st.ModTime(), nil
		}
		return now, nil
	}
	return time.Unix(0, ns), nil
}

// candidate is a session container of a dead owner.
type candidate struct {
	ctr   client.Container
	owner string
	rec   sessionRecord
}

// RecoverSessions implements sdk.Recoverer.
func (b *Backend) RecoverSessions(ctx context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	e, err := b.currentEngine()
	if err != nil {
		return nil, err
	}
	cands, err := e.orphans(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.RecoveredSession, 0, len(specs))
	offered := map[string]bool{}
	for _, spec := range specs {
		r := sdk.RecoveredSession{ID: spec.ID, Recovered: true}
		if ws, err := workspaceOf(spec); err == nil {
			offered[recordKey(spec.ID, ws)] = true
		}
		if err := b.recoverOne(ctx, e, spec, cands); err != nil {
			r.Recovered, r.Reason = false, err.Error()
			b.log.Info("session not recovered", "session", spec.ID, "reason", r.Reason)
		} else {
			b.log.Info("session recovered", "session", spec.ID)
		}
		out = append(out, r)
	}
	go e.releaseUnclaimed(cands, offered)
	return out, nil
}

// releaseUnclaimed removes, without waiting for their recovery grace, the
// session containers that this core's previous plugin processes left and
// this core did not offer: the core offers every session it holds, so
// nobody will recover those. Containers of other cores (another daemon,
// a server, a core that died too) keep their grace.
func (e *engine) releaseUnclaimed(cands map[string]candidate, offered map[string]bool) {
	ctx := e.scoped(e.ctx)
	for key, cand := range cands {
		if offered[key] || cand.rec.Core == "" || cand.rec.Core != e.core {
			continue
		}
		if err := e.removeUnclaimed(ctx, cand); err != nil {
			e.log.Warn("remove a session container nobody recovered", "container", cand.ctr.ID(), "session", cand.rec.ID, "error", err)
			continue
		}
		e.log.Info("removed a session container its core no longer holds", "container", cand.ctr.ID(), "session", cand.rec.ID, "dead_owner", cand.owner)
	}
}

// removeUnclaimed removes a dead owner's container (withOrphan), unless it
// went or was taken over meanwhile.
func (e *engine) removeUnclaimed(ctx context.Context, cand candidate) error {
	err := withOrphan(ctx, cand, func() error {
		if err := removeContainer(ctx, cand.ctr); err != nil {
			return err
		}
		return removeSlot(filepath.Join(e.slots, cand.ctr.ID()))
	})
	if errors.Is(err, errOrphanGone) || errors.Is(err, errOrphanTaken) {
		return nil // removed, or no longer the dead owner's
	}
	return err
}

// coreID names the process that started this plugin, the core: its pid
// and start time, so a reused pid is another core. Empty if unreadable
// (containers then keep their grace).
func coreID() string {
	ppid := os.Getppid()
	start, err := owner.StartTime(ppid)
	if err != nil || ppid <= 1 {
		return ""
	}
	return strconv.Itoa(ppid) + ":" + start
}

func recordKey(id, workspace string) string { return id + "\x00" + workspace }

// orphans lists the session containers of dead owners in the namespace,
// by session id and workspace.
func (e *engine) orphans(ctx context.Context) (map[string]candidate, error) {
	ctx = e.scoped(ctx)
	ctrs, err := e.client.Containers(ctx, fmt.Sprintf(`labels.%q==sandbox`, labelRole))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]candidate{}
	for _, c := range ctrs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			continue
		}
		id := info.Labels[labelInstance]
		if id == "" || id == e.owner || !owner.ValidID(id) {
			continue
		}
		rec, ok := readRecord(slotPaths{root: filepath.Join(e.slots, c.ID())})
		if !ok {
			continue
		}
		// An owner whose lock is held may be alive, or dead and being
		// swept right now (the sweep holds the dead owner's lock while it
		// removes its other containers): takeOver waits to tell. A
		// container of an owner that is surely dead is preferred.
		key := recordKey(rec.ID, rec.Workspace)
		if _, dup := out[key]; dup && owner.Alive(ownersDir, id) {
			continue
		}
		out[key] = candidate{ctr: c, owner: id, rec: rec}
	}
	return out, nil
}

func (b *Backend) recoverOne(ctx context.Context, e *engine, spec *sdk.SessionSpec, cands map[string]candidate) error {
	ws, err := workspaceOf(spec)
	if err != nil {
		return err
	}
	cand, ok := cands[recordKey(spec.ID, ws)]
	if !ok {
		return errors.New("no container of this session outlived the plugin process (it was removed, or its owner still runs)")
	}
	if err := b.reserve(spec.ID); err != nil {
		return err
	}
	s, err := e.adopt(ctx, cand, spec)
	return b.sessions.Settle(spec.ID, s, err)
}

// adopt takes a dead owner's session container over and re-attaches its
// kernel.
func (e *engine) adopt(ctx context.Context, cand candidate, spec *sdk.SessionSpec) (*session, error) {
	ctx = e.scoped(ctx)
	if err := e.takeOver(ctx, cand); err != nil {
		return nil, err
	}
	id := cand.ctr.ID()
	bx := &box{e: e, id: id, slot: slotPaths{root: filepath.Join(e.slots, id)}, ctr: cand.ctr,
		cg: cgroup{path: cgroupParent + "/" + id, v2: unifiedCgroups()}, lim: e.sessionLimits(spec.Limits)}
	k, err := bx.attachKernel(ctx)
	if err != nil {
		// Ours now, and without its variables of no use: removed, task
		// and all (attachKernel may have left the task running).
		if rerr := errors.Join(removeContainer(ctx, cand.ctr), removeSlot(bx.slot.root)); rerr != nil {
			e.log.Warn("remove container whose kernel was not recovered", "container", id, "error", rerr)
		}
		return nil, fmt.Errorf("the container outlived the plugin process but its kernel did not (%v); the container was removed", err)
	}
	bx.k, bx.handed = k, true
	// The orphan stamp goes: should this process die too, the grace is
	// counted afresh.
	if err := os.Remove(filepath.Join(bx.slot.root, "orphaned")); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.log.Warn("remove orphan stamp", "container", id, "error", err)
	}
	if err := writeRecord(bx.slot, sessionRecord{ID: spec.ID, Workspace: cand.rec.Workspace, Grace: e.s.recoveryGrace, Core: e.core}); err != nil {
		e.log.Warn("session record", "container", id, "error", err)
	}
	s := e.newSession(spec, bx)
	s.Adopt(k)
	return s, nil
}

// takeOver relabels a dead owner's container as this process's under the
// dead owner's lock (withOrphan): a sweep removes an owner's containers
// under the same lock, after reading their labels again (removeOwned), so
// the container is either taken over or removed, never both.
func (e *engine) takeOver(ctx context.Context, cand candidate) error {
	return withOrphan(ctx, cand, func() error {
		if _, err := cand.ctr.SetLabels(ctx, map[string]string{labelInstance: e.owner}); err != nil {
			return fmt.Errorf("take over container %s: %w", cand.ctr.ID(), err)
		}
		return nil
	})
}

// Why withOrphan did not run its function.
var (
	errOrphanGone  = errors.New("the session's container was removed meanwhile")
	errOrphanTaken = errors.New("the session's container was taken over by another plugin process")
)

// withOrphan runs fn holding the lock of cand's dead owner, if the
// container still exists and still names that owner (errOrphanGone,
// errOrphanTaken otherwise): a take-over, a removal and the sweep's
// reaping of the same owner exclude each other.
func withOrphan(ctx context.Context, cand candidate, fn func() error) error {
	unlock, err := lockDeadOwner(ctx, cand.owner)
	if err != nil {
		return err
	}
	defer unlock()
	info, err := cand.ctr.Info(ctx)
	if errdefs.IsNotFound(err) {
		return errOrphanGone
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", cand.ctr.ID(), err)
	}
	if info.Labels[labelInstance] != cand.owner {
		return errOrphanTaken
	}
	return fn()
}

// lockDeadOwner takes the lock of a dead owner id without removing its
// lock file (unlike owner.Reap): the lock serialises a take-over with the
// sweeps reaping the same owner. A lock that stays held (a live owner, or
// a sweep still removing the dead owner's other containers) is waited for
// until ctx ends or lockWait has passed.
func lockDeadOwner(ctx context.Context, id string) (func(), error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(owner.LockPath(ownersDir, id), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock of dead owner %s: %w", id, err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock of dead owner %s: %w", id, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the container's previous owner %s still holds its lock after %s (alive, or its leftovers are being swept)", id, lockWait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock of dead owner %s: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lockWait bounds the wait for a dead owner's lock: a sweep removing a
// dead owner's pooled containers holds it for seconds (a dead plugin's
// shim answers slowly).
const lockWait = 30 * time.Second
