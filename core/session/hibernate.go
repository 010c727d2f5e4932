package session

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/internal/sessionreg"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Sessions across the end of the core process.
//
// A serving process (the session daemon, `mcpruntime serve`) keeps a
// session registry (UseRegistry): every session it creates is recorded
// live, every session it closes removed. When the process stops
// gracefully (idle exit, SIGTERM, `daemon stop`) Hibernate checkpoints
// each live session (a Checkpointer: the backend's snapshot where it has
// the capability, otherwise the kernel's pickled variables) and records it
// hibernated; the next process restores it on its next execution, into the
// same session id, and that execution's result says in its message what
// could not be carried. A process that dies leaves its sessions recorded
// live: the next one offers them to their plugins for recovery (see
// recover.go), and those not recovered report state_lost on their next
// execution. No session silently becomes an empty one under the same id.

// Checkpointer saves a session's state so that it can be restored in
// another core process (the replay package's Hibernator).
type Checkpointer interface {
	// Checkpoint saves the state of s, which is live in its plugin and
	// held by the caller (use ExecHeld and SnapshotHeld).
	Checkpoint(ctx context.Context, s *Session) (*sessionreg.Checkpoint, error)
	// Restore completes the restore of s from cp: s was just created in
	// its plugin (from cp.Snapshot when there is one) and is held. It
	// returns the variables not carried, with why.
	Restore(ctx context.Context, s *Session, cp *sessionreg.Checkpoint) (notCarried map[string]string, err error)
	// Discard frees what cp holds (its backend snapshot, its pickle) once
	// it is restored or its session closed.
	Discard(ctx context.Context, s *Session, cp *sessionreg.Checkpoint)
}

// SetCheckpointer sets how Hibernate saves and a later process restores
// sessions' state.
func (m *Manager) SetCheckpointer(c Checkpointer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkpointer = c
}

// UseRegistry makes the manager remember its sessions in reg and takes
// over the sessions reg recorded for a previous process: who names this
// process in messages ("session daemon", "server"). Call it before the
// first session opens. An unreadable record is reported in the error and
// skipped; the others are loaded.
func (m *Manager) UseRegistry(reg *sessionreg.Registry, who string) error {
	recs, lerr := reg.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reg, m.who = reg, who
	for _, rec := range recs {
		if _, ok := m.sessions[rec.ID]; ok {
			continue
		}
		if err := ValidateID(rec.ID); err != nil || rec.Backend == "" {
			lerr = errors.Join(lerr, fmt.Errorf("session registry: record %q: bad id or backend", rec.ID))
			continue
		}
		ws := rec.Workspace
		if ws == "" {
			ws = m.cfg.Workspace
		}
		s, err := m.newSession(rec.ID, rec.Backend, ws, rec.Created)
		if err != nil {
			lerr = errors.Join(lerr, err)
			continue
		}
		s.inherited = true
		s.execs.Store(int64(rec.Execs))
		s.ran = rec.Execs > 0
		switch {
		case rec.State == sessionreg.StateHibernated && rec.Checkpoint != nil:
			s.wake = rec.Checkpoint
			s.hibernated.Store(true)
			s.status.Store(StateHibernated)
		case rec.State == sessionreg.StateLost:
			// Without a reason: nothing ran in it, nothing was lost.
			if s.lost = rec.Reason; s.lost != "" {
				s.status.Store(StateLost)
			}
		default: // live when its process died
			s.offered.Store(true)
			s.status.Store(StatePending)
		}
		m.sessions[rec.ID] = s
	}
	return lerr
}

func (m *Manager) registry() *Registry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reg
}

// Registry is the session registry a manager uses.
type Registry = sessionreg.Registry

// record is the registry record of s; the caller holds s.mu.
func (m *Manager) record(s *Session, state string) sessionreg.Record {
	return sessionreg.Record{ID: s.ID, Backend: s.Backend, Workspace: s.Workspace, Created: s.Created,
		Execs: int(s.execs.Load()), State: state}
}

// persist records s live (it was just created in its plugin); the
// caller holds s.mu.
func (m *Manager) persist(s *Session) {
	reg := m.registry()
	if reg == nil {
		return
	}
	if err := reg.Put(m.record(s, sessionreg.StateLive)); err != nil {
		m.logger.Warn("session registry: the session will not be known to the next process", "session", s.ID, "error", err)
	}
}

// forget removes a closed session from the registry, with its
// checkpoint; the caller holds s.mu.
func (m *Manager) forget(ctx context.Context, s *Session) {
	if cp := s.wake; cp != nil {
		s.wake = nil
		s.hibernated.Store(false)
		if c := m.getCheckpointer(); c != nil {
			c.Discard(ctx, s, cp)
		}
	}
	if reg := m.registry(); reg != nil {
		if err := reg.Delete(s.ID); err != nil {
			m.logger.Warn("session registry", "session", s.ID, "error", err)
		}
	}
}

func (m *Manager) getCheckpointer() Checkpointer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkpointer
}

// Hibernate checkpoints every session live in a plugin and records it
// hibernated in the registry, then destroys it in its plugin; why (for
// example "the session daemon was idle for 15m0s") goes in the note the
// session's next execution carries. Sessions not live here keep their
// records. Executions still running are cancelled first. Without a
// registry it does nothing: Shutdown then destroys the sessions.
func (m *Manager) Hibernate(ctx context.Context, why string) {
	if m.registry() == nil {
		return
	}
	for _, s := range m.List() {
		m.hibernate(ctx, s, why)
	}
}

func (m *Manager) hibernate(ctx context.Context, s *Session, why string) {
	m.mu.Lock()
	if m.sessions[s.ID] != s {
		m.mu.Unlock()
		return
	}
	delete(m.sessions, s.ID)
	m.mu.Unlock()
	s.run.close(fmt.Errorf("%w: %s while this execution ran or waited (session %s was hibernated)", ErrSessionClosed, why, s.ID))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	log := m.logger.With("session", s.ID, "backend", s.Backend)
	s.settle()
	live := s.gen != 0 && s.inst.Alive(s.gen)
	var rec sessionreg.Record
	switch {
	case live && !s.ran && s.lost == "":
		// Nothing ran in it: nothing to carry, it is simply created again.
		rec = m.record(s, sessionreg.StateLost)
		m.closing(ctx, s)
		if err := m.destroy(ctx, s); err != nil {
			log.Warn("hibernate: destroy the empty session", "error", err)
		}
	case live:
		rec = m.record(s, sessionreg.StateHibernated)
		cp, err := m.checkpoint(ctx, s)
		if err != nil {
			log.Warn("hibernate: checkpoint failed; the session's next execution reports state_lost", "error", err)
			rec.State = sessionreg.StateLost
			rec.Reason = fmt.Sprintf("when %s, saving this session's state failed (%v): the session was created again and its variables were lost (workspace files are kept)", why, err)
		} else {
			cp.Why = why
			rec.Checkpoint = cp
			log.Info("session hibernated", "snapshot", cp.Snapshot, "state", cp.State, "not_carried", len(cp.NotCarried))
		}
		m.closing(ctx, s)
		if err := m.destroy(ctx, s); err != nil {
			log.Warn("hibernate: destroy the checkpointed session", "error", err)
		}
	case s.wake != nil:
		// Hibernated before and not woken since: its record stands.
		rec = m.record(s, sessionreg.StateHibernated)
		rec.Checkpoint = s.wake
	case s.lost != "":
		rec = m.record(s, sessionreg.StateLost)
		rec.Reason = s.lost
	case s.inherited || s.gen == 0:
		// Never created here (or lost to a plugin crash with nothing run
		// since): nothing to carry; created afresh on its next execution.
		rec = m.record(s, sessionreg.StateLost)
		if s.ran {
			rec.Reason = m.restartedMessage(s.Backend)
		}
	default:
		rec = m.record(s, sessionreg.StateLost)
		rec.Reason = StateLostMessage(s.Backend)
	}
	if err := m.registry().Put(rec); err != nil {
		log.Warn("session registry: hibernated session not recorded", "error", err)
	}
}

// checkpoint saves s through the checkpointer; the caller holds s.mu.
func (m *Manager) checkpoint(ctx context.Context, s *Session) (*sessionreg.Checkpoint, error) {
	c := m.getCheckpointer()
	if c == nil {
		return nil, errors.New("no checkpointer is set")
	}
	cp, err := c.Checkpoint(ctx, s)
	if err != nil {
		return nil, err
	}
	cp.Taken = time.Now().UTC()
	return cp, nil
}

// wakeUp creates hibernated s again in the running plugin and restores
// its checkpoint; the caller holds s.mu. The next result of the caller's
// code says what was restored (note), or, when the restore failed, that
// the state was lost.
func (m *Manager) wakeUp(ctx context.Context, s *Session) error {
	cp := s.wake
	log := m.logger.With("session", s.ID, "backend", s.Backend)
	c := m.getCheckpointer()
	var failed error
	if cp.Snapshot != "" {
		s.restore = cp.Snapshot
		if err := m.create(ctx, s); err != nil {
			s.restore = ""
			failed = fmt.Errorf("restoring its backend snapshot %s failed: %w", cp.Snapshot, err)
		}
	}
	if s.gen == 0 || !s.inst.Alive(s.gen) || failed != nil {
		if err := m.create(ctx, s); err != nil {
			return err
		}
	}
	var notCarried map[string]string
	if failed == nil {
		if c == nil {
			failed = errors.New("no checkpointer is set in this process")
		} else if nc, err := c.Restore(ctx, s, cp); err != nil {
			failed = err
		} else {
			notCarried = nc
		}
	}
	s.wake, s.inherited = nil, false
	s.hibernated.Store(false)
	if failed != nil {
		log.Warn("wake from hibernation failed; the session's variables are lost", "error", failed)
		s.lost = fmt.Sprintf("this session was hibernated (%s at %s) and %v: the session was created again and its variables were lost (workspace files are kept)",
			cp.Why, cp.Taken.Format(time.RFC3339), failed)
	} else {
		s.ran = true
		s.note = wakeNote(cp, notCarried)
		log.Info("session woken from hibernation", "not_carried", len(notCarried))
	}
	if c != nil {
		c.Discard(ctx, s, cp)
	}
	m.persist(s)
	return nil
}

// wakeNote says what a wake from hibernation carried.
func wakeNote(cp *sessionreg.Checkpoint, notCarried map[string]string) string {
	from := "its saved variables"
	if cp.Snapshot != "" {
		from = "the backend's snapshot"
	}
	note := fmt.Sprintf("this session was hibernated (%s at %s) and restored from %s", cp.Why, cp.Taken.Format(time.RFC3339), from)
	if len(notCarried) == 0 {
		return note + "; everything was carried"
	}
	names := make([]string, 0, len(notCarried))
	for n := range notCarried {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " (" + notCarried[n] + ")"
	}
	return note + "; not carried: " + strings.Join(parts, ", ")
}

// ExecHeld runs the runtime's own code in s, which the caller holds and
// which is live in its plugin (a Checkpointer), and returns what it
// printed. Observers do not see it and it does not count as an execution.
func (m *Manager) ExecHeld(ctx context.Context, s *Session, code string) (string, *sdk.ExecResult, error) {
	if s.gen == 0 || !s.inst.Alive(s.gen) {
		return "", nil, fmt.Errorf("session %s is not running in its plugin", s.ID)
	}
	p, _, err := s.inst.Get(ctx)
	if err != nil {
		return "", nil, err
	}
	var out strings.Builder
	res, err := p.Execute(ctx, &sdk.ExecRequest{SessionID: s.ID, Code: code, Timeout: s.limit.Timeout}, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	if err != nil {
		return "", nil, fmt.Errorf("execute in session %s: %w", s.ID, err)
	}
	return out.String(), res, nil
}
