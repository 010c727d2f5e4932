package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Recovery after a plugin restart (plugin protocol 2).
//
// The plugin host starts a backend's plugin again when its process died
// and, before handing the new process to anyone, calls recoverSessions. It
// asks the new plugin to RecoverSessions every session the manager holds on
// that backend; a backend whose sandboxes outlive the plugin process
// (sdk.Recoverer) adopts those that survived. A recovered session is marked
// adopted into the new generation and carries on as if nothing happened.
// Every other session is created afresh in the new plugin by its next
// execution, whose result says state_lost (see Manager.exec).

// recoverSessions is the manager's pluginhost.RestartFunc.
func (m *Manager) recoverSessions(ctx context.Context, backend string, p *host.Plugin, gen int) {
	m.mu.Lock()
	var held []*Session
	for _, s := range m.sessions {
		if s.Backend == backend {
			held = append(held, s)
		}
	}
	m.mu.Unlock()
	if len(held) == 0 {
		return
	}
	log := m.logger.With("backend", backend, "generation", gen)
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
		log.Info("plugin restarted; it cannot recover sessions, their next executions report state_lost",
			"protocol", p.ProtocolVersion(), "sessions", len(specs), "reason", err)
		return
	case err != nil:
		log.Error("plugin restarted; recovering its sessions failed, their next executions report state_lost",
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
		recovered++
		log.Info("session recovered", "session", a.ID)
	}
	log.Info("plugin restarted", "sessions", len(specs), "recovered", recovered)
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

// reportLost marks res, the result of code in s, as state_lost while s has
// a loss not yet reported: the session was created again after a plugin
// restart. The first execution of code that is not internal reports it,
// and only that one. The caller holds s.mu.
func (m *Manager) reportLost(res *sdk.ExecResult, s *Session, code string) {
	if !s.lost {
		return
	}
	res.StateLost = true
	if res.Message == "" {
		res.Message = StateLostMessage(s.Backend)
	} else {
		res.Message += " (note: " + StateLostMessage(s.Backend) + ")"
	}
	m.mu.Lock()
	internal := m.internal
	m.mu.Unlock()
	if internal == nil || !internal(code) {
		s.lost = false
	}
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
