package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/runstore"
	"github.com/mcpruntime/mcpruntime/core/session"
)

// Runner carries out the asynchronous agent runs and keeps them.
type Runner struct {
	// Run carries out one run (the CLI's `run`); its result is returned as
	// JSON. It passes spec's History and hooks to the agent loop.
	Run func(ctx context.Context, spec RunSpec) (any, error)
	// Store keeps the runs, so they outlive the process; the server closes
	// it in Close.
	Store *runstore.Store
}

// RunSpec is one run for a Runner: a new one, or a resumed one with the
// turns it already completed.
type RunSpec struct {
	ID      string
	Task    string
	Backend string
	Session string
	// History holds the turns a resumed run completed (agent.Options.History).
	History []agent.Turn
	// OnReply and OnStep record the run's progress as it goes
	// (agent.Options.OnReply and OnStep).
	OnReply func(ctx context.Context, turn int, reply string) error
	OnStep  func(ctx context.Context, turn int, step *agent.Step) error
	// Input is loaded into the session as `context` (POST /v1/runs
	// {"context": ...}); not kept for a resume.
	Input *agent.Input
}

// WithRunner enables the asynchronous agent-run endpoints.
func WithRunner(r *Runner) Option {
	return func(s *Server) { s.runs = &runs{run: r.Run, store: r.Store, active: map[string]*activeRun{}} }
}

// Run is an asynchronous agent run as the API shows it.
type Run struct {
	ID      string `json:"id"`
	Task    string `json:"task"`
	Backend string `json:"backend,omitempty"`
	Session string `json:"session,omitempty"`
	// Status is running, done, failed, cancelled (by DELETE) or
	// interrupted (its server stopped or died; POST .../resume continues it).
	Status   string          `json:"status"`
	Started  time.Time       `json:"started"`
	Finished *time.Time      `json:"finished,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Steps are the completed steps, each with the reply that wrote it
	// (GET /v1/runs/ID only).
	Steps []RunStep `json:"steps,omitempty"`
}

// RunStep is one completed step of a run.
type RunStep struct {
	Turn int `json:"turn"`
	// Reply is the model's reply whose code block the step ran.
	Reply string `json:"reply"`
	*agent.Step
}

// RunRequest is the body of POST /v1/runs.
type RunRequest struct {
	Task    string `json:"task"`
	Backend string `json:"backend,omitempty"`
	Session string `json:"session,omitempty"`
	// Context is a large input the run works on as the session's
	// `context` variable, described to the model but never sent to it.
	Context string `json:"context,omitempty"`
}

func (s *Server) routeRuns() {
	s.Handle("POST /v1/runs", s.startRun)
	s.Handle("GET /v1/runs", s.listRuns)
	s.Handle("GET /v1/runs/{id}", s.getRun)
	s.Handle("DELETE /v1/runs/{id}", s.cancelRun)
	s.Handle("POST /v1/runs/{id}/resume", s.resumeRun)
}

var errNoRunner = errors.New("agent runs need an llm block in runtime.hcl (or OPENAI_BASE_URL)")

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	if s.runs == nil {
		writeError(w, http.StatusNotImplemented, errNoRunner)
		return
	}
	var req RunRequest
	err := s.decodeBody(w, r, []field{
		{name: "task", dst: &req.Task, required: true},
		{name: "backend", dst: &req.Backend},
		{name: "session", dst: &req.Session},
		{name: "context", dst: &req.Context},
	})
	if err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	if req.Task == "" {
		writeError(w, http.StatusBadRequest, errors.New("task is empty"))
		return
	}
	if req.Session == "" {
		// Chosen here, not by the runner, so that the stored run names the
		// session a resume continues in.
		req.Session = session.NewID()
	}
	run := runstore.Run{ID: runstore.NewID(), Task: req.Task, Backend: req.Backend, Session: req.Session,
		Status: runstore.Running, Started: time.Now().UTC()}
	var input *agent.Input
	if req.Context != "" {
		input = &agent.Input{Value: req.Context, Source: "the request"}
	}
	if err := s.runs.start(r.Context(), run, nil, true, input, s.logger); err != nil {
		writeError(w, runStatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiRun(&run, false))
}

func (s *Server) resumeRun(w http.ResponseWriter, r *http.Request) {
	if s.runs == nil {
		writeError(w, http.StatusNotImplemented, errNoRunner)
		return
	}
	// The body ({}) has no fields yet; decoding it keeps the API's rule
	// that unknown fields are refused.
	if err := s.decodeBody(w, r, nil); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	id := r.PathValue("id")
	if s.runs.isActive(id) {
		writeError(w, http.StatusConflict, fmt.Errorf("run %s is running", id))
		return
	}
	run, err := s.runs.store.Resume(r.Context(), id)
	if err != nil {
		writeError(w, runStatusOf(err), err)
		return
	}
	if err := s.runs.start(r.Context(), *run, run.Turns, false, nil, s.logger); err != nil {
		writeError(w, runStatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiRun(run, true))
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	out := []Run{}
	if s.runs != nil {
		if err := s.runs.store.Recover(r.Context()); err != nil {
			s.logger.Warn("could not look for interrupted runs", "error", err)
		}
		all, err := s.runs.store.List(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		for i := range all {
			out = append(out, apiRun(&all[i], false))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// lookupRun loads the run the path names, with its steps, or answers the
// request with an error and returns nil.
func (s *Server) lookupRun(w http.ResponseWriter, r *http.Request) *runstore.Run {
	if s.runs == nil {
		writeError(w, http.StatusNotFound, runstore.ErrNotFound)
		return nil
	}
	if err := s.runs.store.Recover(r.Context()); err != nil {
		s.logger.Warn("could not look for interrupted runs", "error", err)
	}
	run, err := s.runs.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, runStatusOf(err), err)
		return nil
	}
	return run
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	if run := s.lookupRun(w, r); run != nil {
		writeJSON(w, http.StatusOK, apiRun(run, true))
	}
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run := s.lookupRun(w, r)
	if run == nil {
		return
	}
	if !s.runs.cancel(run.ID) && run.Status == runstore.Running {
		writeError(w, http.StatusConflict, fmt.Errorf("run %s runs in another process sharing this state dir; cancel it there", run.ID))
		return
	}
	writeJSON(w, http.StatusAccepted, apiRun(run, false))
}

// apiRun is how the API shows a stored run.
func apiRun(r *runstore.Run, withSteps bool) Run {
	out := Run{ID: r.ID, Task: r.Task, Backend: r.Backend, Session: r.Session, Status: string(r.Status),
		Started: r.Started, Finished: r.Finished, Result: r.Result, Error: r.Error}
	if withSteps {
		for _, t := range r.Turns {
			for _, st := range t.Steps {
				out.Steps = append(out.Steps, RunStep{Turn: t.N, Reply: t.Reply, Step: st})
			}
		}
	}
	return out
}

// errClosing refuses runs while the server shuts down.
var errClosing = errors.New("the server is shutting down")

func runStatusOf(err error) int {
	switch {
	case errors.Is(err, runstore.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, runstore.ErrNotResumable):
		return http.StatusConflict
	case errors.Is(err, errClosing):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// runs are the agent runs of a server: the store keeps all of them, active
// those this process is running.
type runs struct {
	run   func(ctx context.Context, spec RunSpec) (any, error)
	store *runstore.Store
	mu    sync.Mutex
	// active maps the id of each run this process is executing.
	active  map[string]*activeRun
	closing bool
	wg      sync.WaitGroup
}

type activeRun struct {
	cancel context.CancelFunc
	// byUser is set by DELETE: the run ends cancelled, not interrupted.
	byUser bool
}
