package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Recovery after a plugin restart (plugin protocol 2), and after the
// restart of the core process itself.
//
// The plugin host starts a backend's plugin again when its process died
// and, before handing the new process to anyone, calls recoverSessions. It
// asks the new plugin to RecoverSessions every session the manager holds on
// that backend; a backend whose sandboxes outlive the plugin process
// (sdk.Recoverer) adopts those that survived. A recovered session is marked
// adopted into the new generation and carries on as if nothing happened.
// Every other session is created afresh in the new plugin by its next
// execution, whose result says state_lost (see Manager.exec).
//
// The first start of a plugin in a core process (generation 1) offers the
// sessions the session registry had live when the previous core process
// died (UseRegistry): a backend whose sandboxes outlive the core too
// adopts them, with their variables.

// recoverSessions is the manager's pluginhost.StartFunc.
func (m *Manager) recoverSessions(ctx context.Context, backend string, p *host.Plugin, gen int) {
	m.mu.Lock()
	var held []*Session
	for _, s := range m.sessions {
		if s.Backend != backend || s.hibernated.Load() {
			continue
		}
		if gen == 1 && !s.offered.Load() {
			continue
		}
		held = append(held, s)
	}
	m.mu.Unlock()
	if gen == 1 {
		// Offered once; those not recovered are lost.
		defer func() {
			for _, s := range held {
				if s.offered.CompareAndSwap(true, false) && s.adopted.Load() == 0 {
					s.status.Store(StateLost)
				}
			}
		}()
	}
	if len(held) == 0 {
		return
	}
	log := m.logger.With("backend", backend, "generation", gen)
	what := "plugin restarted"
	if gen == 1 {
		what = "the " + m.who + " restarted"
	}
	specs := make([]*sdk.SessionSpec, 0, len(held))
	byID := make(map[string]*Session, len(held))
	for _, s := range held {
		spec, err := m.spec(s)
		if err != nil {
			log.Warn("cannot offer session for recovery", "session", s.ID, "error", err)
			continue
		}
		specs = append(specs, spec)
		byID[s.ID] = s
	}
	answers, err := p.RecoverSessions(ctx, specs)
	switch {
	case errors.Is(err, sdk.ErrNotSupported):
		log.Info(what+"; the plugin cannot recover sessions, their next executions report state_lost",
			"protocol", p.ProtocolVersion(), "sessions", len(specs), "reason", err)
		return
	case err != nil:
		log.Error(what+"; recovering its sessions failed, their next executions report state_lost",
			"sessions", len(specs), "error", err)
		return
	}
	recovered := 0
	for _, a := range answers {
		s, ok := byID[a.ID]
		if !ok {
			continue
		}
		if !a.Recovered {
			log.Info("session not recovered; its next execution reports state_lost", "session", a.ID, "reason", a.Reason)
			continue
		}
		s.adopted.Store(int64(gen))
		s.status.Store(StateLive)
		recovered++
		log.Info("session recovered", "session", a.ID)
	}
	log.Info(what, "sessions", len(specs), "recovered", recovered)
}

// settle moves s into the plugin generation a restart recovered it into,
// if that is newer than the one it lives in. The caller holds s.mu.
func (s *Session) settle() {
	if g := int(s.adopted.Load()); g > s.gen {
		s.gen = g
	}
}

// StateLostMessage is the note an execution's result carries when its
// session had to be created again because the plugin it lived in had
// restarted.
func StateLostMessage(backend string) string {
	return fmt.Sprintf("the %s plugin restarted since this session's previous execution and could not recover it: "+
		"the session was created again and its variables were lost (workspace files are kept)", backend)
}

// SetInternal tells the manager which code is the runtime's own (the
// replay recorder's state saves, for example). A pending state_lost is
// reported to the first execution of other code: a save the recorder runs
// after a crashed step must not take the note the caller's next execution
// needs.
func (m *Manager) SetInternal(isInternal func(code string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.internal = isInternal
}

// restartedMessage is the state_lost note of a session the registry had
// live when the previous core process died, which its plugin did not
// recover.
func (m *Manager) restartedMessage(backend string) string {
	return fmt.Sprintf("the %s restarted since this session's previous execution (its previous process ended without hibernating the session) "+
		"and the %s backend could not recover it: the session was created again and its variables were lost (workspace files are kept)", m.who, backend)
}

// reportLost marks res, the result of code in s, as state_lost while s has
// a loss not yet reported: the session was created again after a plugin
// or core restart. The first execution of code that is not internal
// reports it, and only that one; the same execution carries the note of a
// wake from hibernation (without state_lost: nothing was lost but what the
// note names). The caller holds s.mu.
func (m *Manager) reportLost(res *sdk.ExecResult, s *Session, code string) {
	m.mu.Lock()
	internal := m.internal
	m.mu.Unlock()
	isInternal := internal != nil && internal(code)
	if isInternal && res.StateLost && s.lost == "" {
		// The backend tells a loss once (a kernel that died while the
		// session was idle): when the runtime's own code (a state save
		// right after a step) is what hears it, the caller's next
		// execution must still say it.
		s.lost = KernelLostMessage(s.Backend, res.Message)
	}
	if s.lost == "" && s.note == "" {
		return
	}
	for _, note := range []string{s.lost, s.note} {
		switch {
		case note == "":
		case res.Message == "":
			res.Message = note
		default:
			res.Message += " (note: " + note + ")"
		}
	}
	if s.lost != "" {
		res.StateLost = true
	}
	if !isInternal {
		s.lost, s.note = "", ""
	}
}

// KernelLostMessage is the state_lost note of a session whose backend
// reported the loss to an execution of the runtime's own code; why is what
// the backend said.
func KernelLostMessage(backend, why string) string {
	msg := fmt.Sprintf("the session's %s sandbox lost its variables since the previous execution (its kernel was restarted)", backend)
	if why != "" {
		msg += ": " + why
	}
	return msg
}

// Protocol is the plugin protocol version the named backend's plugin
// negotiated (starting it if needed).
func (m *Manager) Protocol(ctx context.Context, backend string) (int, error) {
	inst, err := m.host.Backend(backend)
	if err != nil {
		return 0, err
	}
	return inst.Protocol(ctx)
}
