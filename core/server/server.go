// Package server is mcpruntime's HTTP API: sessions, streaming execution
// and (with the agent) runs, skills and replay. The same handler serves the
// per-workspace daemon on a unix socket (what `exec --session` talks to) and
// `mcpruntime serve` on TCP with a bearer token. Every request passes a
// Guard (Host, Origin, Sec-Fetch-Site, JSON bodies) and Limits (body and
// code size, header and body time) before it reaches a handler.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Server serves the API for one session manager.
type Server struct {
	m      *session.Manager
	logger hclog.Logger
	token  string
	mux    *http.ServeMux
	guard  *Guard
	limits Limits
	bodies *bodyReader
	// handler is mux behind the guard and the token check.
	handler http.Handler

	last     atomic.Int64 // unix nanos of the last request
	inflight atomic.Int64
	stopOnce sync.Once
	stop     chan struct{}
	// ConfigDigest identifies the runtime.hcl the server was started with.
	ConfigDigest string
	runs         *runs
	// labelTask labels a session's next replay steps with the task of the
	// agent run executing them (WithRecorder).
	labelTask func(session, task string)
	// console: WithConsole serves the web console (its files and the
	// login are public).
	console bool
	// patterns are the registered routes (Routes).
	patterns []string
}

// Option configures a Server.
type Option func(*Server)

// WithToken requires `Authorization: Bearer TOKEN` on every request.
func WithToken(t string) Option { return func(s *Server) { s.token = t } }

// WithGuard sets the request guard; without it the server refuses every
// browser request (NewSocketGuard), which suits the unix-socket daemon.
func WithGuard(g *Guard) Option { return func(s *Server) { s.guard = g } }

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithConfigDigest records which configuration the server runs.
func WithConfigDigest(d string) Option { return func(s *Server) { s.ConfigDigest = d } }

// New returns a server for m.
func New(m *session.Manager, opts ...Option) *Server {
	s := &Server{m: m, logger: hclog.NewNullLogger(), mux: http.NewServeMux(), stop: make(chan struct{}),
		guard: NewSocketGuard(), limits: Limits{}.WithDefaults()}
	for _, o := range opts {
		o(s)
	}
	s.bodies = newBodyReader(s.limits)
	var h http.Handler = http.HandlerFunc(s.track)
	h = s.authenticate(h)
	s.handler = s.guard.Wrap(h, s.logger)
	s.last.Store(time.Now().UnixNano())
	s.Handle("GET /v1/health", s.health)
	s.Handle("GET /v1/sessions", s.listSessions)
	s.Handle("POST /v1/sessions", s.openSession)
	s.Handle("DELETE /v1/sessions/{id}", s.closeSession)
	s.Handle("POST /v1/sessions/{id}/execute", s.execute)
	s.Handle("POST /v1/execute", s.execute)
	s.Handle("POST /v1/execute/stream", s.execute)
	s.Handle("POST /v1/shutdown", s.shutdown)
	s.Handle("GET "+OpenAPIPath, serveOpenAPI)
	if s.console {
		s.Handle("POST "+LoginPath, s.login)
		s.Handle("GET "+LoginPath, s.whoami)
		s.Handle("POST "+LogoutPath, s.logout)
	}
	s.routeRuns()
	return s
}

// Handle adds a route (used by the agent's endpoints).
func (s *Server) Handle(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Routes are the patterns of the registered routes (the OpenAPI
// document's test checks it describes each).
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

// ServeHTTP implements http.Handler: the guard, authentication, activity
// tracking, then the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// track counts r as activity (see Idle) while the routes serve it.
func (s *Server) track(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer func() {
		s.inflight.Add(-1)
		s.last.Store(time.Now().UnixNano())
	}()
	s.mux.ServeHTTP(w, r)
}

// Done is closed when a client asked the server to shut down.
func (s *Server) Done() <-chan struct{} { return s.stop }

// Idle reports whether nothing happened for d and nothing is running.
func (s *Server) Idle(d time.Duration) bool {
	if s.runs != nil && s.runs.busy() {
		return false
	}
	return s.inflight.Load() == 0 && time.Since(time.Unix(0, s.last.Load())) > d
}

// Close checkpoints agent runs still going (they stop, stored as
// interrupted) and waits for them.
func (s *Server) Close() { s.waitRuns() }

// Health is the body of GET /v1/health.
type Health struct {
	OK           bool   `json:"ok"`
	Pid          int    `json:"pid"`
	Sessions     int    `json:"sessions"`
	ConfigDigest string `json:"config_digest"`
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Health{OK: true, Pid: os.Getpid(), Sessions: len(s.m.List()), ConfigDigest: s.ConfigDigest})
}

// SessionInfo describes a session in API responses.
type SessionInfo struct {
	ID        string    `json:"id"`
	Backend   string    `json:"backend"`
	Workspace string    `json:"workspace"`
	Created   time.Time `json:"created"`
	Execs     int       `json:"execs"`
	// State is live, pending_recovery (from a server or daemon process
	// that died; its plugin has not been asked to recover it yet),
	// hibernated (restored by its next execution) or lost (its next
	// execution creates it again and reports state_lost).
	State string `json:"state"`
}

// info describes s without waiting for an execution running in it.
func info(s *session.Session) SessionInfo {
	return SessionInfo{ID: s.ID, Backend: s.Backend, Workspace: s.Workspace, Created: s.Created, Execs: s.Execs(), State: s.State()}
}

func (s *Server) listSessions(w http.ResponseWriter, _ *http.Request) {
	out := []SessionInfo{}
	for _, sess := range s.m.List() {
		out = append(out, info(sess))
	}
	writeJSON(w, http.StatusOK, out)
}

// OpenRequest is the body of POST /v1/sessions.
type OpenRequest struct {
	ID      string `json:"id"`
	Backend string `json:"backend"`
}

func (req *OpenRequest) fields() []field {
	return []field{{name: "id", dst: &req.ID}, {name: "backend", dst: &req.Backend}}
}

func (s *Server) openSession(w http.ResponseWriter, r *http.Request) {
	var req OpenRequest
	if err := s.decodeBody(w, r, req.fields()); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	sess, err := s.m.Open(r.Context(), session.Options{ID: req.ID, Backend: req.Backend})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, info(sess))
}

// closeSession cancels the execution running in the session, if any,
// then destroys it: it does not wait for the code to finish.
func (s *Server) closeSession(w http.ResponseWriter, r *http.Request) {
	if err := s.m.Close(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) shutdown(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	s.stopOnce.Do(func() { close(s.stop) })
}

// ExecRequest is the body of the execute endpoints.
type ExecRequest struct {
	Code    string `json:"code"`
	Backend string `json:"backend,omitempty"`
	// Session is used by POST /v1/execute; empty runs in a throw-away session.
	Session   string `json:"session,omitempty"`
	TimeoutMs int64  `json:"timeout_ms,omitempty"`
	// Create opens the named session if it does not exist; without it an
	// unknown session is 404 (a typo, or a session that ended, must not
	// silently become a new empty one).
	Create bool `json:"create,omitempty"`
	// Task is the agent run the code belongs to, as its replay steps show.
	Task string `json:"task,omitempty"`
}

// Event is one line of an execution stream (NDJSON, or SSE `data:`).
type Event struct {
	Type     string              `json:"type"` // stdout, stderr, display, host_call, result, error
	Data     string              `json:"data,omitempty"`
	HostCall *sdk.HostCallNotice `json:"host_call,omitempty"`
	// Display is a rich output (type "display"): {"data": {mime: value}},
	// binary types base64, as in Jupyter's notebook format.
	Display *sdk.Display    `json:"display,omitempty"`
	Result  *sdk.ExecResult `json:"result,omitempty"`
	Session string          `json:"session,omitempty"`
	Error   string          `json:"error,omitempty"`
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	raw, done, err := s.readBody(w, r)
	if err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	req, err := decodeExecRequest(raw, s.limits.MaxCode)
	done()
	if err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	id := r.PathValue("id")
	if id == "" {
		id = req.Session
	}
	ephemeral := id == ""
	sess, err := s.m.Open(r.Context(), session.Options{ID: id, Backend: req.Backend, Existing: !ephemeral && !req.Create})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if ephemeral {
		defer s.m.Close(context.WithoutCancel(r.Context()), sess.ID)
	}
	if s.labelTask != nil {
		s.labelTask(sess.ID, req.Task)
	}
	sse := strings.HasSuffix(r.URL.Path, "/stream") || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	out := newStream(w, sse)
	res, err := s.m.Exec(r.Context(), sess, req.Code, session.Millis(req.TimeoutMs), func(e sdk.Event) {
		switch e.Kind {
		case sdk.EventStdout:
			out.send(Event{Type: "stdout", Data: string(e.Data)})
		case sdk.EventStderr:
			out.send(Event{Type: "stderr", Data: string(e.Data)})
		case sdk.EventHostCall:
			out.send(Event{Type: "host_call", HostCall: e.HostCall})
		case sdk.EventDisplay:
			out.send(Event{Type: "display", Display: e.Display})
		}
	})
	if err != nil {
		out.send(Event{Type: "error", Error: err.Error(), Session: sess.ID})
		return
	}
	out.send(Event{Type: "result", Result: res, Session: sess.ID})
}

// stream writes events as NDJSON or server-sent events, flushing each.
type stream struct {
	w   http.ResponseWriter
	f   http.Flusher
	sse bool
	enc *json.Encoder
}

func newStream(w http.ResponseWriter, sse bool) *stream {
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &stream{w: w, f: f, sse: sse, enc: json.NewEncoder(w)}
}

func (s *stream) send(e Event) {
	if s.sse {
		fmt.Fprintf(s.w, "event: %s\ndata: ", e.Type)
	}
	_ = s.enc.Encode(e)
	if s.sse {
		fmt.Fprint(s.w, "\n")
	}
	if s.f != nil {
		s.f.Flush()
	}
}

func statusOf(err error) int {
	var nf *pluginhost.NotFoundError
	switch {
	case errors.Is(err, sdk.ErrSessionNotFound):
		return http.StatusNotFound
	case errors.As(err, &nf), errors.Is(err, session.ErrInvalidID):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, APIError{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
