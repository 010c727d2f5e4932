package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Runner runs an agent task to completion (the CLI's `run`); its result is
// returned as JSON.
type Runner func(ctx context.Context, task, backend, session string) (any, error)

// WithRunner enables the asynchronous agent-run endpoints.
func WithRunner(r Runner) Option {
	return func(s *Server) { s.runs = &runs{run: r, tasks: map[string]*Run{}} }
}

// Run is an asynchronous agent run.
type Run struct {
	ID       string     `json:"id"`
	Task     string     `json:"task"`
	Status   string     `json:"status"` // running, done, failed, cancelled
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Result   any        `json:"result,omitempty"`
	Error    string     `json:"error,omitempty"`

	cancel context.CancelFunc
}

type runs struct {
	run   Runner
	mu    sync.Mutex
	tasks map[string]*Run
	wg    sync.WaitGroup
}

// RunRequest is the body of POST /v1/runs.
type RunRequest struct {
	Task    string `json:"task"`
	Backend string `json:"backend,omitempty"`
	Session string `json:"session,omitempty"`
}

func (s *Server) routeRuns() {
	s.mux.HandleFunc("POST /v1/runs", s.startRun)
	s.mux.HandleFunc("GET /v1/runs", s.listRuns)
	s.mux.HandleFunc("GET /v1/runs/{id}", s.getRun)
	s.mux.HandleFunc("DELETE /v1/runs/{id}", s.cancelRun)
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	if s.runs == nil {
		writeError(w, http.StatusNotImplemented, errors.New("agent runs need an llm block in runtime.hcl (or OPENAI_BASE_URL)"))
		return
	}
	var req RunRequest
	err := s.decodeBody(w, r, []field{
		{name: "task", dst: &req.Task, required: true},
		{name: "backend", dst: &req.Backend},
		{name: "session", dst: &req.Session},
	})
	if err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	if req.Task == "" {
		writeError(w, http.StatusBadRequest, errors.New("task is empty"))
		return
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithCancel(context.Background())
	run := &Run{ID: "r-" + hex.EncodeToString(b), Task: req.Task, Status: "running", Started: time.Now().UTC(), cancel: cancel}
	s.runs.mu.Lock()
	s.runs.tasks[run.ID] = run
	s.runs.mu.Unlock()
	s.runs.wg.Add(1)
	go func() {
		defer s.runs.wg.Done()
		defer cancel()
		res, err := s.runs.run(ctx, req.Task, req.Backend, req.Session)
		now := time.Now().UTC()
		s.runs.mu.Lock()
		defer s.runs.mu.Unlock()
		run.Finished, run.Result = &now, res
		switch {
		case ctx.Err() != nil:
			run.Status, run.Error = "cancelled", "cancelled"
		case err != nil:
			run.Status, run.Error = "failed", err.Error()
		default:
			run.Status = "done"
		}
	}()
	writeJSON(w, http.StatusAccepted, s.snapshot(run))
}

// snapshot copies a run under the lock for encoding.
func (s *Server) snapshot(run *Run) Run {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	c := *run
	c.cancel = nil
	return c
}

func (s *Server) listRuns(w http.ResponseWriter, _ *http.Request) {
	out := []Run{}
	if s.runs != nil {
		s.runs.mu.Lock()
		for _, r := range s.runs.tasks {
			c := *r
			c.cancel, c.Result = nil, nil
			out = append(out, c)
		}
		s.runs.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) lookupRun(w http.ResponseWriter, r *http.Request) *Run {
	if s.runs == nil {
		writeError(w, http.StatusNotFound, errors.New("no such run"))
		return nil
	}
	s.runs.mu.Lock()
	run := s.runs.tasks[r.PathValue("id")]
	s.runs.mu.Unlock()
	if run == nil {
		writeError(w, http.StatusNotFound, errors.New("no such run"))
	}
	return run
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	if run := s.lookupRun(w, r); run != nil {
		writeJSON(w, http.StatusOK, s.snapshot(run))
	}
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	if run := s.lookupRun(w, r); run != nil {
		run.cancel()
		writeJSON(w, http.StatusAccepted, s.snapshot(run))
	}
}

// waitRuns lets running agent runs finish (they are cancelled first).
func (s *Server) waitRuns() {
	if s.runs == nil {
		return
	}
	s.runs.mu.Lock()
	for _, r := range s.runs.tasks {
		r.cancel()
	}
	s.runs.mu.Unlock()
	s.runs.wg.Wait()
}
