package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// WithReplayAPI serves the replay store of workspace for browsers and
// other clients (what `replay list|show|fork|resume` print):
//
//	GET  /v1/replay                                   recorded sessions (replay.SessionSummary)
//	GET  /v1/replay/{session}?offset=&limit=          its steps (ReplaySteps)
//	GET  /v1/replay/{session}/steps/{step}/diff?from= the workspace diff against an earlier step (WorkspaceDiff)
//	GET  /v1/replay/{session}/steps/{step}/outputs    the step's rich outputs as mime bundles
//	GET  /v1/replay/{session}/steps/{step}/state      its variables and workspace files (StepState)
//	GET  /v1/sessions/{id}/state                      the same for a session's latest step
//	POST /v1/replay/{session}/fork|resume {step}      a new session from the step (replay.Report)
func WithReplayAPI(workspace string, rec *replay.Recorder) Option {
	return func(s *Server) {
		a := &replayAPI{s: s, ws: workspace, rec: rec}
		s.Handle("GET /v1/replay", a.list)
		s.Handle("GET /v1/replay/{session}", a.steps)
		s.Handle("GET /v1/replay/{session}/steps/{step}/diff", a.diff)
		s.Handle("GET /v1/replay/{session}/steps/{step}/outputs", a.outputs)
		s.Handle("GET /v1/replay/{session}/steps/{step}/state", a.stepState)
		s.Handle("GET /v1/sessions/{id}/state", a.sessionState)
		s.Handle("POST /v1/replay/{session}/fork", func(w http.ResponseWriter, r *http.Request) { a.branch(w, r, true) })
		s.Handle("POST /v1/replay/{session}/resume", func(w http.ResponseWriter, r *http.Request) { a.branch(w, r, false) })
	}
}

type replayAPI struct {
	s   *Server
	ws  string
	rec *replay.Recorder
}

// ReplaySteps is the body of GET /v1/replay/{session}: Total steps, of
// which Steps from Offset.
type ReplaySteps struct {
	Session  string           `json:"session"`
	Total    int              `json:"total"`
	Offset   int              `json:"offset"`
	Steps    []replay.Entry   `json:"steps"`
	Problems []replay.Problem `json:"problems,omitempty"`
}

// StepState is a step's kernel variables (as its state save recorded
// them) and workspace files (its snapshot's manifest).
type StepState struct {
	Session   string             `json:"session"`
	Step      int                `json:"step"`
	Variables *replay.StateInfo  `json:"variables,omitempty"`
	Files     []replay.FileEntry `json:"files"`
	// Problems say what could not be read (a state save still running).
	Problems []string `json:"problems,omitempty"`
}

// BranchRequest is the body of POST /v1/replay/{session}/fork and /resume.
type BranchRequest struct {
	Step int `json:"step"`
}

func replayStatus(err error) int {
	switch {
	case errors.Is(err, replay.ErrNoStep), errors.Is(err, replay.ErrNoSession):
		return http.StatusNotFound
	case errors.Is(err, session.ErrInvalidID):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (a *replayAPI) list(w http.ResponseWriter, _ *http.Request) {
	list, err := replay.List(a.ws)
	if errors.Is(err, fs.ErrNotExist) {
		// No workspace yet: nothing was recorded.
		list, err = nil, nil
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if list == nil {
		list = []replay.SessionSummary{}
	}
	writeJSON(w, http.StatusOK, list)
}

// queryInt reads an optional non-negative integer parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

func (a *replayAPI) steps(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := queryInt(r, "limit", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id := r.PathValue("session")
	entries, problems, err := replay.Show(a.ws, id, -1)
	if err != nil {
		writeError(w, replayStatus(err), err)
		return
	}
	out := ReplaySteps{Session: id, Total: len(entries), Offset: offset, Problems: problems}
	entries = entries[min(offset, len(entries)):]
	if limit > 0 && limit < len(entries) {
		entries = entries[:limit]
	}
	out.Steps = append([]replay.Entry{}, entries...)
	writeJSON(w, http.StatusOK, out)
}

// step reads the step the path names, answering the request on error.
func (a *replayAPI) step(w http.ResponseWriter, id, stepText string) *replay.Entry {
	n, err := strconv.Atoi(stepText)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("step %q is not a non-negative integer", stepText))
		return nil
	}
	entries, _, err := replay.Show(a.ws, id, n)
	if err != nil {
		writeError(w, replayStatus(err), err)
		return nil
	}
	return &entries[0]
}

func (a *replayAPI) diff(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("session")
	to := a.step(w, id, r.PathValue("step"))
	if to == nil {
		return
	}
	fromText := r.URL.Query().Get("from")
	var from *replay.Entry
	if fromText != "" {
		if from = a.step(w, id, fromText); from == nil {
			return
		}
	} else if prev := previousStep(a.ws, id, to.Step); prev != nil {
		from = prev
	}
	d, err := diffSteps(a.ws, from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	d.Session = id
	writeJSON(w, http.StatusOK, d)
}

// previousStep is the step recorded before step (with a workspace
// snapshot), or nil for the first.
func previousStep(ws, id string, step int) *replay.Entry {
	entries, _, err := replay.Show(ws, id, -1)
	if err != nil {
		return nil
	}
	var prev *replay.Entry
	for i := range entries {
		e := &entries[i]
		if e.Step < step && e.WorkspaceSnapshot != "" && (prev == nil || e.Step > prev.Step) {
			prev = e
		}
	}
	return prev
}

func (a *replayAPI) outputs(w http.ResponseWriter, r *http.Request) {
	e := a.step(w, r.PathValue("session"), r.PathValue("step"))
	if e == nil {
		return
	}
	out, err := stepOutputs(a.ws, e)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// stepOutputs rebuilds the mime bundles of e's rich outputs from the
// store, as the execution streamed them.
func stepOutputs(ws string, e *replay.Entry) ([]sdk.Display, error) {
	out := make([]sdk.Display, 0, len(e.Outputs))
	if len(e.Outputs) == 0 {
		return out, nil
	}
	var files map[string]replay.FileEntry
	if e.OutputsManifest != "" {
		man, err := replay.LoadManifest(ws, e.OutputsManifest)
		if err != nil {
			return nil, fmt.Errorf("outputs of step %d: %w", e.Step, err)
		}
		files = make(map[string]replay.FileEntry, len(man.Files))
		for _, f := range man.Files {
			files[f.Path] = f
		}
	}
	for _, o := range e.Outputs {
		d := sdk.Display{Data: map[string][]byte{}}
		if o.Text != "" {
			d.Data[sdk.MIMEText] = []byte(o.Text)
		}
		for mime, name := range o.Files {
			f, ok := files[name]
			if !ok {
				continue
			}
			b, err := readObject(ws, f.Hash, maxOutputObject)
			if err != nil {
				return nil, fmt.Errorf("output %s of step %d: %w", name, e.Step, err)
			}
			d.Data[mime] = b
		}
		out = append(out, d)
	}
	return out, nil
}

func (a *replayAPI) stepState(w http.ResponseWriter, r *http.Request) {
	e := a.step(w, r.PathValue("session"), r.PathValue("step"))
	if e == nil {
		return
	}
	writeJSON(w, http.StatusOK, stateOf(a.ws, e))
}

// sessionState is the state of a session's latest recorded step (its
// variables and files now, as far as replay knows them).
func (a *replayAPI) sessionState(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	entries, _, err := replay.Show(a.ws, id, -1)
	if err != nil {
		writeError(w, replayStatus(err), err)
		return
	}
	var last *replay.Entry
	for i := range entries {
		if last == nil || entries[i].Step >= last.Step {
			last = &entries[i]
		}
	}
	if last == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w %s: no steps", replay.ErrNoSession, id))
		return
	}
	writeJSON(w, http.StatusOK, stateOf(a.ws, last))
}

func stateOf(ws string, e *replay.Entry) StepState {
	st := StepState{Session: e.Session, Step: e.Step, Files: []replay.FileEntry{}}
	if e.State != "" {
		si, err := replay.ReadStateInfo(ws, e.State)
		if err != nil {
			st.Problems = append(st.Problems, "variables: "+err.Error())
		} else {
			st.Variables = si
		}
	}
	if e.WorkspaceSnapshot != "" {
		man, err := replay.LoadManifest(ws, e.WorkspaceSnapshot)
		if err != nil {
			st.Problems = append(st.Problems, "files: "+err.Error())
		} else {
			st.Files = append(st.Files, man.Files...)
		}
	}
	return st
}

// branch forks (the original stays) or resumes (the original ends) a
// session from a recorded step, in-process through the recorder.
func (a *replayAPI) branch(w http.ResponseWriter, r *http.Request, fork bool) {
	var req BranchRequest
	if err := a.s.decodeBody(w, r, []field{{name: "step", dst: &req.Step, required: true}}); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	id := r.PathValue("session")
	if _, _, err := replay.Show(a.ws, id, req.Step); err != nil {
		writeError(w, replayStatus(err), err)
		return
	}
	_, rep, err := a.rec.Resume(r.Context(), a.ws, id, req.Step, fork)
	if err != nil {
		writeError(w, replayStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
