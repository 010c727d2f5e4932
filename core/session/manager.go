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
	Code    string
	Stdout  string
	Stderr  string
	Result  *sdk.ExecResult
	Calls   []*sdk.HostCallNotice
	Started time.Time
	Err     error
}

// New returns a Manager that launches backends through host.
func New(cfg *config.Config, host *pluginhost.Host, br *bridge.Bridge, logger hclog.Logger) *Manager {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if br == nil {
		br = &bridge.Bridge{}
	}
	m := &Manager{cfg: cfg, host: host, bridge: br, logger: logger, sessions: map[string]*Session{}}
	if host != nil {
		host.OnRestart(m.recoverSessions)
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

// Session is a live sandbox session.
type Session struct {
	ID        string    `json:"id"`
	Backend   string    `json:"backend"`
	Workspace string    `json:"workspace"`
	Created   time.Time `json:"created"`

	inst  *pluginhost.Instance
	limit sdk.Limits
	// adopted is the plugin generation a restarted plugin recovered the
	// session into (recover.go); 0: none.
	adopted atomic.Int64
	// lost: the session was created again after a plugin restart and no
	// execution has reported state_lost to its caller yet (recover.go).
	lost bool

	mu    sync.Mutex // one execution at a time
	gen   int        // plugin generation the session lives in; 0: not created
	execs int
	info  *sdk.Info
	// restore is the backend snapshot the session is first created from.
	restore string
}

// Execs is how many executions the session has run.
func (s *Session) Execs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs
}

// Capabilities of the session's backend.
func (s *Session) Capabilities() sdk.Capabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.info == nil {
		return sdk.Capabilities{}
	}
	return s.info.Capabilities
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
	inst, err := m.host.Backend(backend)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	lim := m.cfg.Sandbox(backend).Limits
	s := &Session{ID: id, Backend: backend, Workspace: m.cfg.Workspace, Created: time.Now().UTC(), inst: inst,
		limit: sdk.Limits{Timeout: lim.Timeout, MemoryBytes: lim.MemoryBytes, OutputBytes: lim.OutputBytes,
			CPUMillis: int64(lim.CPUs * 1000), Pids: lim.Pids}, restore: opts.Restore}
	m.sessions[id] = s
	m.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := m.create(ctx, s); err != nil {
		m.mu.Lock()
		delete(m.sessions, id)
		m.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// create makes the session exist in the current plugin process.
func (m *Manager) create(ctx context.Context, s *Session) error {
	p, gen, err := s.inst.Get(ctx)
	if err != nil {
		return err
	}
	s.info, _ = s.inst.Info(ctx)
	spec, err := m.spec(s)
	if err != nil {
		return err
	}
	if s.restore != "" {
		if err := p.Restore(ctx, s.restore, spec); err != nil {
			return fmt.Errorf("restore session %s on %s from snapshot %s: %w", s.ID, s.Backend, s.restore, err)
		}
		s.restore = ""
	} else if err := p.CreateSession(ctx, spec); err != nil {
		return fmt.Errorf("create session %s on %s: %w", s.ID, s.Backend, err)
	}
	s.gen = gen
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
	s.mu.Lock()
	defer s.mu.Unlock()
	step := &Step{Code: code, Started: time.Now().UTC()}
	res, err := m.exec(ctx, s, code, timeout, step, emit)
	if res != nil {
		res.Limits = applied
	}
	step.Result, step.Err = res, err
	s.execs++
	m.mu.Lock()
	obs := append([]Observer(nil), m.observers...)
	m.mu.Unlock()
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
		// The plugin this session lived in is gone and the new one did not
		// recover it: start it afresh, and say so in a result.
		existed := s.gen != 0 || s.execs > 0
		if err := m.create(ctx, s); err != nil {
			return nil, err
		}
		s.lost = s.lost || existed
	}
	capture := newCapture(s.limit.OutputBytes)
	res, err := p.Execute(ctx, &sdk.ExecRequest{SessionID: s.ID, Code: code, Timeout: timeout}, func(e sdk.Event) {
		capture.add(e)
		if emit != nil {
			emit(e)
		}
	})
	step.Stdout, step.Stderr, step.Calls = capture.stdout.String(), capture.stderr.String(), capture.calls
	if err != nil {
		if ctx.Err() == nil && s.inst.WaitExit(gen, time.Second) {
			s.gen = 0
			return nil, fmt.Errorf("%w: the %s plugin exited during execution; unless the restarted plugin recovers session %s, its variables are lost (workspace files are kept) and the next execution in it reports state_lost", ErrPluginCrashed, s.Backend, s.ID)
		}
		return nil, fmt.Errorf("execute in session %s: %w", s.ID, err)
	}
	m.reportLost(res, s, code)
	return res, nil
}

// Close destroys a session.
func (m *Manager) Close(ctx context.Context, id string) error {
	m.mu.Lock()
	s, ok := m.sessions[id]
	delete(m.sessions, id)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m.closing(ctx, s)
	s.settle()
	if !s.inst.Alive(s.gen) {
		return nil
	}
	p, _, err := s.inst.Get(ctx)
	if err != nil {
		return err
	}
	if err := p.DestroySession(ctx, id); err != nil && !errors.Is(err, sdk.ErrSessionNotFound) {
		return fmt.Errorf("destroy session %s: %w", id, err)
	}
	return nil
}

// Shutdown destroys every session and stops the plugins.
func (m *Manager) Shutdown(ctx context.Context) {
	for _, s := range m.List() {
		if err := m.Close(ctx, s.ID); err != nil {
			m.logger.Warn("close session", "session", s.ID, "error", err)
		}
	}
	m.host.Shutdown()
}
