// Package session keeps the sandbox sessions of one core process: it
// creates them on the configured backend, routes executions to them,
// applies the backend's limits, and recovers from plugin crashes.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/internal/sessionreg"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Manager owns sessions.
type Manager struct {
	cfg    *config.Config
	host   *pluginhost.Host
	bridge *bridge.Bridge
	logger hclog.Logger

	mu        sync.Mutex
	sessions  map[string]*Session
	observers []Observer
	closers   []Closer
	mounts    []sdk.Mount
	internal  func(code string) bool // see SetInternal (recover.go)
	// reg remembers the sessions across the end of this process;
	// checkpointer saves and restores their state (hibernate.go). who
	// names the process in messages ("session daemon", "server").
	reg          *sessionreg.Registry
	checkpointer Checkpointer
	who          string
}

// AddMount makes a host directory visible read-only in every session created
// from now on (tool stubs, for example). target must lie below sdk.GuestLib.
func (m *Manager) AddMount(source, target string) error {
	if !strings.HasPrefix(target, sdk.GuestLib+"/") {
		return fmt.Errorf("mount target %s is not below %s", target, sdk.GuestLib)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mounts = append(m.mounts, sdk.Mount{Source: source, Target: target, ReadOnly: true})
	return nil
}

// Observer sees every finished execution (the replay log is one).
type Observer func(ctx context.Context, s *Session, step *Step)

// Step is one finished execution.
type Step struct {
	Code   string
	Stdout string
	Stderr string
	Result *sdk.ExecResult
	Calls  []*sdk.HostCallNotice
	// Displays are the execution's rich outputs (plots, tables), in order.
	Displays []*sdk.Display
	Started  time.Time
	Err      error
}

// New returns a Manager that launches backends through host.
func New(cfg *config.Config, host *pluginhost.Host, br *bridge.Bridge, logger hclog.Logger) *Manager {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if br == nil {
		br = &bridge.Bridge{}
	}
	m := &Manager{cfg: cfg, host: host, bridge: br, logger: logger, sessions: map[string]*Session{}, who: "mcpruntime process"}
	if host != nil {
		host.OnStart(m.recoverSessions)
	}
	return m
}

// Observe registers an observer of finished executions.
func (m *Manager) Observe(o Observer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observers = append(m.observers, o)
}

// Config is the configuration sessions are created from.
func (m *Manager) Config() *config.Config { return m.cfg }

// Bridge is the host-call bridge of the manager's sessions.
func (m *Manager) Bridge() *bridge.Bridge { return m.bridge }

// Session is a sandbox session: live in its backend's plugin, or (from
// the registry of a previous process) waiting to be recovered, woken from
// hibernation or created again by its next execution.
type Session struct {
	ID        string    `json:"id"`
	Backend   string    `json:"backend"`
	Workspace string    `json:"workspace"`
	Created   time.Time `json:"created"`

	inst  *pluginhost.Instance
	limit sdk.Limits
	// adopted is the plugin generation a started plugin recovered the
	// session into (recover.go); 0: none.
	adopted atomic.Int64
	// execs, info and status are read by listings without waiting for an
	// execution (mu is held while one runs).
	execs  atomic.Int64
	info   atomic.Pointer[sdk.Info]
	status atomic.Value // string: State
	// offered: the session came from the registry live (its previous
	// process died), so the first start of its plugin offers it for
	// recovery; hibernated: it waits for its checkpoint to be restored.
	offered    atomic.Bool
	hibernated atomic.Bool
	// run cancels the executions running or waiting in the session when
	// it is closed (cancel.go).
	run runs

	mu  sync.Mutex // one execution at a time
	gen int        // plugin generation the session lives in; 0: not created
	// lost: the session was created again and lost its variables; no
	// execution has reported state_lost to its caller yet. It says why
	// (the note the result carries).
	lost string
	// note is said once, like lost, by the next result of the caller's
	// code: what waking from hibernation restored and what it could not.
	note string
	// restore is the backend snapshot the session is first created from.
	restore string
	// wake is the checkpoint a hibernated session is restored from when
	// it is next created (hibernate.go).
	wake *sessionreg.Checkpoint
	// inherited: the session came from the registry of a previous process
	// and was not created in this one yet.
	inherited bool
	closed    bool
	// ran: the session has state to carry (code ran in it, the runtime's
	// own included, or it was created from a snapshot).
	ran bool
}

// Session states (State).
const (
	// StateLive: the session lives in its plugin, or will be created by
	// its next execution without loss.
	StateLive = "live"
	// StatePending: from the registry of a process that died; its plugin
	// has not been asked to recover it yet.
	StatePending = "pending_recovery"
	// StateHibernated: checkpointed when its process stopped; its next
	// execution restores it.
	StateHibernated = "hibernated"
	// StateLost: its next execution creates it again and reports
	// state_lost.
	StateLost = "lost"
)

// State says where the session is (StateLive, StatePending,
// StateHibernated, StateLost), without waiting for its execution.
func (s *Session) State() string {
	if v, ok := s.status.Load().(string); ok && v != "" {
		return v
	}
	return StateLive
}

// Execs is how many executions the session has run (in this process and
// those before it that the registry remembers).
func (s *Session) Execs() int { return int(s.execs.Load()) }

// Capabilities of the session's backend.
func (s *Session) Capabilities() sdk.Capabilities {
	if info := s.info.Load(); info != nil {
		return info.Capabilities
	}
	return sdk.Capabilities{}
}

// Options select how a session is opened.
type Options struct {
	// ID names the session; empty generates one.
	ID string
	// Backend overrides runtime.hcl's default backend.
	Backend string
	// Restore creates the session from this backend snapshot
	// (Backend.Restore) instead of empty. Only the first creation uses it:
	// a session re-created after a plugin crash starts fresh.
	Restore string
	// Existing only opens a session the manager knows (live, or in the
	// registry of a previous process): an unknown ID is
	// sdk.ErrSessionNotFound instead of a new session.
	Existing bool
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewID returns a fresh session id.
func NewID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "s-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// ValidateID checks that id can name a session (and its replay file).
func ValidateID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("%w %q: use letters, digits, '.', '_' or '-' (at most 128)", ErrInvalidID, id)
	}
	return nil
}

// Open returns the session named opts.ID, creating it on its backend if it
// does not exist.
func (m *Manager) Open(ctx context.Context, opts Options) (*Session, error) {
	id := opts.ID
	if id == "" {
		id = NewID()
	}
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	backend := opts.Backend
	if backend == "" {
		backend = m.cfg.Backend
	}
	m.mu.Lock()
	if s, ok := m.sessions[id]; ok {
		m.mu.Unlock()
		if opts.Backend != "" && s.Backend != opts.Backend {
			return nil, fmt.Errorf("session %s runs on backend %s, not %s", id, s.Backend, opts.Backend)
		}
		return s, nil
	}
	if opts.Existing {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s (create it first: POST /v1/sessions, or \"create\": true in the execute request)", sdk.ErrSessionNotFound, id)
	}
	s, err := m.newSession(id, backend, m.cfg.Workspace, time.Now().UTC())
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	s.restore = opts.Restore
	m.sessions[id] = s
	m.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := m.create(ctx, s); err != nil {
		m.mu.Lock()
		if m.sessions[id] == s {
			delete(m.sessions, id)
		}
		m.mu.Unlock()
		return nil, err
	}
	m.persist(s)
	return s, nil
}

// newSession makes the Session of id on backend; the caller holds m.mu.
func (m *Manager) newSession(id, backend, workspace string, created time.Time) (*Session, error) {
	inst, err := m.host.Backend(backend)
	if err != nil {
		return nil, err
	}
	lim := m.cfg.Sandbox(backend).Limits
	return &Session{ID: id, Backend: backend, Workspace: workspace, Created: created, inst: inst,
		limit: sdk.Limits{Timeout: lim.Timeout, MemoryBytes: lim.MemoryBytes, OutputBytes: lim.OutputBytes,
			CPUMillis: int64(lim.CPUs * 1000), Pids: lim.Pids}}, nil
}

// create makes the session exist in the current plugin process.
func (m *Manager) create(ctx context.Context, s *Session) error {
	p, gen, err := s.inst.Get(ctx)
	if err != nil {
		return err
	}
	if info, err := s.inst.Info(ctx); err == nil {
		s.info.Store(info)
	}
	spec, err := m.spec(s)
	if err != nil {
		return err
	}
	if s.restore != "" {
		if err := p.Restore(ctx, s.restore, spec); err != nil {
			return fmt.Errorf("restore session %s on %s from snapshot %s: %w", s.ID, s.Backend, s.restore, err)
		}
		s.restore, s.ran = "", true
	} else if err := p.CreateSession(ctx, spec); err != nil {
		return fmt.Errorf("create session %s on %s: %w", s.ID, s.Backend, err)
	}
	s.gen = gen
	s.status.Store(StateLive)
	return nil
}

func (m *Manager) spec(s *Session) (*sdk.SessionSpec, error) {
	if err := os.MkdirAll(s.Workspace, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	spec := &sdk.SessionSpec{ID: s.ID, Workspace: s.Workspace, Limits: s.limit, Host: m.bridge.ForSession(s.ID)}
	if dir := m.cfg.Skills.Dir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			spec.Mounts = append(spec.Mounts, sdk.Mount{Source: dir, Target: sdk.GuestSkills, ReadOnly: true})
		}
	}
	m.mu.Lock()
	spec.Mounts = append(spec.Mounts, m.mounts...)
	m.mu.Unlock()
	return spec, nil
}

// Get returns a live session.
func (m *Manager) Get(id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, id)
}

// List returns the live sessions, oldest first.
func (m *Manager) List() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// ErrInvalidID rejects session ids that are not safe file names.
var ErrInvalidID = errors.New("invalid session id")

// ErrSessionClosed wraps executions that a closing session (DELETE,
// shutdown) cancelled or refused.
var ErrSessionClosed = errors.New("session closed")

// ErrPluginCrashed wraps executions lost to a crashing plugin.
var ErrPluginCrashed = errors.New("backend plugin crashed")

// Exec runs code in session s, streaming output through emit (may be nil).
// A positive timeout shortens the backend's configured limit, never
// lengthens it (see Effective); the result's Limits say what applied.
func (m *Manager) Exec(ctx context.Context, s *Session, code string, timeout time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	timeout, applied, err := Effective(s.limit, timeout)
	if err != nil {
		return nil, err
	}
	// Closing the session cancels this execution, running or waiting.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ticket, ok := s.run.add(cancel)
	if !ok {
		return nil, s.run.why()
	}
	defer s.run.remove(ticket)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.run.why()
	}
	step := &Step{Code: code, Started: time.Now().UTC()}
	res, err := m.exec(ctx, s, code, timeout, step, emit)
	if res != nil {
		res.Limits = applied
	}
	step.Result, step.Err = res, err
	s.ran = true
	m.mu.Lock()
	obs := append([]Observer(nil), m.observers...)
	internal, reg := m.internal, m.reg
	m.mu.Unlock()
	// The runtime's own executions (state saves) are not the caller's.
	if internal == nil || !internal(code) {
		n := s.execs.Add(1)
		if reg != nil {
			if err := reg.Execs(s.ID, int(n)); err != nil {
				m.logger.Warn("session registry: should this process die, the session's next execution in the next one may not report state_lost", "session", s.ID, "error", err)
			}
		}
	}
	for _, o := range obs {
		o(ctx, s, step)
	}
	return res, err
}

func (m *Manager) exec(ctx context.Context, s *Session, code string, timeout time.Duration, step *Step, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	p, gen, err := s.inst.Get(ctx)
	if err != nil {
		return nil, err
	}
	s.settle()
	if s.gen != gen {
		// Not (or no longer) in the running plugin: restore it from its
		// hibernation checkpoint, or create it again, saying so in a
		// result.
		if err := m.revive(ctx, s); err != nil {
			return nil, err
		}
	}
	capture := newCapture(s.limit.OutputBytes)
	res, err := p.Execute(ctx, &sdk.ExecRequest{SessionID: s.ID, Code: code, Timeout: timeout}, func(e sdk.Event) {
		capture.add(e)
		if emit != nil {
			emit(e)
		}
	})
	step.Stdout, step.Stderr, step.Calls = capture.stdout.String(), capture.stderr.String(), capture.calls
	step.Displays = capture.displays
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrSessionClosed) {
			return nil, cause
		}
		if ctx.Err() == nil && s.inst.WaitExit(gen, time.Second) {
			s.gen = 0
			return nil, fmt.Errorf("%w: the %s plugin exited during execution; unless the restarted plugin recovers session %s, its variables are lost (workspace files are kept) and the next execution in it reports state_lost", ErrPluginCrashed, s.Backend, s.ID)
		}
		return nil, fmt.Errorf("execute in session %s: %w", s.ID, err)
	}
	m.reportLost(res, s, code)
	return res, nil
}

// revive creates s again in the running plugin; the caller holds s.mu.
func (m *Manager) revive(ctx context.Context, s *Session) error {
	if s.wake != nil {
		return m.wakeUp(ctx, s)
	}
	existed := s.gen != 0 || s.ran
	if err := m.create(ctx, s); err != nil {
		return err
	}
	if existed && s.lost == "" {
		if s.inherited {
			s.lost = m.restartedMessage(s.Backend)
		} else {
			s.lost = StateLostMessage(s.Backend)
		}
	}
	s.inherited = false
	m.persist(s)
	return nil
}

// Close destroys a session, cancelling the execution running in it (and
// any waiting) first.
func (m *Manager) Close(ctx context.Context, id string) error {
	m.mu.Lock()
	s, ok := m.sessions[id]
	delete(m.sessions, id)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, id)
	}
	s.run.close(fmt.Errorf("%w: session %s was closed while this execution ran or waited", ErrSessionClosed, id))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	m.closing(ctx, s)
	m.forget(ctx, s)
	s.settle()
	if !s.inst.Alive(s.gen) {
		return nil
	}
	return m.destroy(ctx, s)
}

// destroy removes s from its running plugin; the caller holds s.mu.
func (m *Manager) destroy(ctx context.Context, s *Session) error {
	p, _, err := s.inst.Get(ctx)
	if err != nil {
		return err
	}
	if err := p.DestroySession(ctx, s.ID); err != nil && !errors.Is(err, sdk.ErrSessionNotFound) {
		return fmt.Errorf("destroy session %s: %w", s.ID, err)
	}
	return nil
}

// Shutdown ends every session and stops the plugins. With a session
// registry (UseRegistry) the sessions are hibernated (see Hibernate, if
// the caller has not done it with its own reason); without, destroyed.
func (m *Manager) Shutdown(ctx context.Context) {
	if m.registry() != nil {
		m.Hibernate(ctx, "the "+m.who+" shut down")
	}
	for _, s := range m.List() {
		if err := m.Close(ctx, s.ID); err != nil {
			m.logger.Warn("close session", "session", s.ID, "error", err)
		}
	}
	m.host.Shutdown()
	if reg := m.registry(); reg != nil {
		if err := reg.Close(); err != nil {
			m.logger.Warn("session registry", "error", err)
		}
	}
}
