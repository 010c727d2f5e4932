package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// WithRecorder serves the replay recorder's backend snapshots:
//
//	POST /v1/sessions/{id}/snapshot  take one of a live session now ({} → replay.SnapshotRecord)
//	POST /v1/replay/restore          create a session from the snapshot of a recorded step (RestoreRequest → RestoreResponse)
func WithRecorder(rec *replay.Recorder) Option {
	return func(s *Server) {
		s.labelTask = rec.SetTask
		s.Handle("POST /v1/sessions/{id}/snapshot", func(w http.ResponseWriter, r *http.Request) {
			if err := s.decodeBody(w, r, nil); err != nil {
				writeError(w, statusFor(err), err)
				return
			}
			snap, err := rec.SnapshotNow(r.Context(), r.PathValue("id"))
			if err != nil {
				code := statusOf(err)
				if errors.Is(err, replay.ErrSnapshotsOff) || errors.Is(err, sdk.ErrNotSupported) {
					code = http.StatusConflict
				}
				writeError(w, code, err)
				return
			}
			writeJSON(w, http.StatusOK, snap)
		})
		s.Handle("POST /v1/replay/restore", func(w http.ResponseWriter, r *http.Request) {
			var req RestoreRequest
			if err := s.decodeBody(w, r, req.fields()); err != nil {
				writeError(w, statusFor(err), err)
				return
			}
			resp := RestoreResponse{Session: req.ID}
			if snap, why := rec.RestoreStep(r.Context(), req.ID, req.Backend, req.FromSession, req.Step); snap != nil {
				resp.Snapshot = snap.ID
			} else {
				resp.Reason = why
			}
			writeJSON(w, http.StatusOK, resp)
		})
	}
}

// RestoreRequest is the body of POST /v1/replay/restore: create session
// ID on Backend from the backend snapshot of FromSession's Step.
type RestoreRequest struct {
	ID          string `json:"id"`
	Backend     string `json:"backend"`
	FromSession string `json:"from_session"`
	Step        int    `json:"step"`
}

func (req *RestoreRequest) fields() []field {
	return []field{{name: "id", dst: &req.ID, required: true}, {name: "backend", dst: &req.Backend, required: true},
		{name: "from_session", dst: &req.FromSession, required: true}, {name: "step", dst: &req.Step, required: true}}
}

// RestoreResponse answers POST /v1/replay/restore: Snapshot is the one
// the session was created from; without one, no session was created and
// Reason says why.
type RestoreResponse struct {
	Session  string `json:"session"`
	Snapshot string `json:"snapshot,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Snapshot asks the server to take a backend snapshot of live session id.
func (c *Client) Snapshot(ctx context.Context, id string) (*replay.SnapshotRecord, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/snapshot", struct{}{})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rec replay.SnapshotRecord
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// RestoreStep asks the server to create a session from the backend
// snapshot of a recorded step.
func (c *Client) RestoreStep(ctx context.Context, req RestoreRequest) (*RestoreResponse, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/replay/restore", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out RestoreResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return &out, nil
}
