package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Executor runs the runtime's own code in sessions, wherever they live
// (an in-process Manager, or the workspace daemon over its API).
type Executor interface {
	// Exec runs code in session id on backend, creating the session on
	// first use, and returns what it printed.
	Exec(ctx context.Context, id, backend, code string) (stdout string, res *sdk.ExecResult, err error)
	// Close ends session id if it is live; a missing session is no error.
	Close(ctx context.Context, id string) error
}

// StateRestorer is an Executor that can also create a session from the
// backend snapshot of a recorded step (Recorder.RestoreStep, in-process or
// in the daemon).
type StateRestorer interface {
	// RestoreStep creates session id on backend from the backend snapshot
	// of fromSession's step and returns the snapshot's id; with none to
	// use it creates nothing and says why.
	RestoreStep(ctx context.Context, id, backend, fromSession string, step int) (snapshotID, whyNot string, err error)
}

// Report says what a resume or fork restored and what it could not.
type Report struct {
	Session string `json:"session"` // the new session
	From    Origin `json:"from"`
	Backend string `json:"backend"`
	// Workspace is the snapshot the workspace was restored to;
	// PreviousWorkspace the snapshot taken of it just before, so the
	// files it had are recoverable (RestoreWorkspace).
	Workspace         string        `json:"workspace_snapshot,omitempty"`
	PreviousWorkspace string        `json:"previous_workspace_snapshot,omitempty"`
	Files             *RestoreStats `json:"files,omitempty"`
	State             string        `json:"state,omitempty"`
	// StateSource is where the variables came from: StateFromSnapshot
	// (the backend restored its snapshot of the step: the sandbox's whole
	// state), StateFromPickle (the kernel's pickled globals) or
	// StateFromNothing.
	StateSource string `json:"state_source"`
	// StateSnapshot is the backend snapshot restored; SnapshotFallback
	// says why none was, when the pickle was used instead.
	StateSnapshot    string   `json:"state_snapshot,omitempty"`
	SnapshotFallback string   `json:"snapshot_fallback,omitempty"`
	Restored         []string `json:"restored"`
	// NotRestored are variables that could not be brought back, with why
	// (unpicklable when saved, failing to load now).
	NotRestored map[string]string `json:"not_restored"`
	// StateError is set when no variables could be restored at all.
	StateError string `json:"state_error,omitempty"`
	// OriginalClosed: resume ended the original live session.
	OriginalClosed bool     `json:"original_closed"`
	Notes          []string `json:"notes,omitempty"`
}

// Semantics is the user-facing description of resume and fork.
const Semantics = `Both resume and fork open a NEW session whose Python variables are those
after step N and whose workspace files are those after step N. Variables come
from the backend's snapshot of step N where the backend has the snapshots
capability and one is held (replay.snapshots in runtime.hcl: every_step, or
on_demand, which snapshots a live session's latest step just before the
resume or fork, or when asked with "replay snapshot"): then the sandbox's whole
state comes back, as far as the backend's snapshot carries it. Otherwise they
come from the kernel's pickled globals, which cannot carry generators, open
files, sockets and the like; the report names every variable not restored.
state_source in the report says which was used.

The workspace directory is SHARED by every session of the project: restoring
step N's files rewrites, and deletes, files for every session using it, including
the original one and any running in the daemon. Nothing is lost: the files as they
were just before are snapshotted first (previous_workspace_snapshot in the report)
and every recorded step stays restorable. Files too large to snapshot are left
as they are and listed.

resume: continues the original from step N: the original session, if still live
        in the daemon, is ended (its variables no longer match the files). Its log
        is kept unchanged.
fork:   branches off step N: the original session stays live and its log
        untouched (only the shared workspace files change).`

// ManagerExecutor runs the runtime's own code through an in-process manager.
func ManagerExecutor(m *session.Manager) Executor { return managerExec{m: m} }

// Executor runs the runtime's own code through the recorder's manager and
// restores the backend snapshots the recorder holds (a StateRestorer).
func (r *Recorder) Executor() Executor { return managerExec{m: r.m, r: r} }

type managerExec struct {
	m *session.Manager
	r *Recorder
}

func (x managerExec) RestoreStep(ctx context.Context, id, backend, fromSession string, step int) (string, string, error) {
	if x.r == nil {
		return "", "no replay recorder holds backend snapshots here", nil
	}
	rec, why := x.r.RestoreStep(ctx, id, backend, fromSession, step)
	if rec == nil {
		return "", why, nil
	}
	return rec.ID, "", nil
}

func (x managerExec) Exec(ctx context.Context, id, backend, code string) (string, *sdk.ExecResult, error) {
	s, err := x.m.Open(ctx, session.Options{ID: id, Backend: backend})
	if err != nil {
		return "", nil, err
	}
	var out strings.Builder
	res, err := x.m.Exec(Internal(ctx), s, code, 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	return out.String(), res, err
}

func (x managerExec) Close(ctx context.Context, id string) error {
	if err := x.m.Close(ctx, id); err != nil && !errors.Is(err, sdk.ErrSessionNotFound) {
		return err
	}
	return nil
}

// Resume is ResumeWith in-process, through the recorder's manager and
// backend snapshots: resume_from(session, step).
func (r *Recorder) Resume(ctx context.Context, workspace, sessionID string, step int, fork bool) (string, *Report, error) {
	var exclude []string
	if cfg := r.m.Config(); cfg != nil && cfg.StateDir != "" {
		exclude = append(exclude, cfg.StateDir)
	}
	return ResumeWith(ctx, r.Executor(), workspace, sessionID, step, fork, exclude...)
}

// NewSessionID names the session resumed (r) or forked (f) from step.
func NewSessionID(from string, step int, fork bool) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	kind := "r"
	if fork {
		kind = "f"
	}
	suffix := fmt.Sprintf("-%s%d-%s", kind, step, hex.EncodeToString(b))
	if len(from)+len(suffix) > 128 {
		from = from[:128-len(suffix)]
	}
	return from + suffix
}

// ResumeWith opens a new session from step of sessionID (see Semantics)
// and returns its id and what was restored. exclude are further paths
// restores leave alone (the state dir).
func ResumeWith(ctx context.Context, x Executor, workspace, sessionID string, step int, fork bool, exclude ...string) (string, *Report, error) {
	entries, _, err := Show(workspace, sessionID, step)
	if err != nil {
		return "", nil, err
	}
	e := entries[0]
	newID := NewSessionID(sessionID, step, fork)
	rep := &Report{Session: newID, From: Origin{Session: sessionID, Step: step, Fork: fork}, Backend: e.Backend,
		Workspace: e.WorkspaceSnapshot, State: e.State, Restored: []string{}, NotRestored: map[string]string{}}

	// The state ref's sidecar; the save runs just after the step.
	var si *StateInfo
	if e.State != "" {
		// The save runs just after the step: wait for it if recent.
		deadline := e.Time.Add(time.Duration(e.DurationMs*float64(time.Millisecond)) + 30*time.Second)
		if limit := time.Now().Add(10 * time.Second); deadline.After(limit) {
			deadline = limit
		}
		for {
			si, err = ReadStateInfo(workspace, e.State)
			if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			rep.StateError = "the state of this step was never saved (the process recording it ended first)"
		case err != nil:
			rep.StateError = err.Error()
		case si.Error != "":
			rep.StateError = si.Error
		}
	} else {
		rep.StateError = "this step has no saved state (recorded without state saving)"
	}

	// Validate the manifest before changing anything.
	snap := NewSnapshotter(workspace, exclude...)
	if e.WorkspaceSnapshot != "" {
		if _, err := LoadManifest(workspace, e.WorkspaceSnapshot); err != nil {
			return "", nil, err
		}
	} else {
		rep.Notes = append(rep.Notes, "step has no workspace snapshot: files were left as they are")
	}
	// Create the new session first: fails early on a missing backend.
	// From the backend's snapshot of the step where there is one.
	if sr, ok := x.(StateRestorer); ok {
		id, why, err := sr.RestoreStep(ctx, newID, e.Backend, sessionID, step)
		if err != nil {
			return "", nil, fmt.Errorf("open session %s on %s: %w", newID, e.Backend, err)
		}
		rep.StateSnapshot, rep.SnapshotFallback = id, why
	} else {
		rep.SnapshotFallback = "backend snapshots are not available on this path"
	}
	if rep.StateSnapshot == "" {
		if _, res, err := x.Exec(ctx, newID, e.Backend, InternalMarker+"pass\n"); err != nil {
			return "", nil, fmt.Errorf("open session %s on %s: %w", newID, e.Backend, err)
		} else if res.Error != sdk.ErrorNone {
			return "", nil, fmt.Errorf("open session %s on %s: %s", newID, e.Backend, res.Message)
		}
	}
	if !fork {
		if err := x.Close(ctx, sessionID); err != nil {
			rep.Notes = append(rep.Notes, "could not end the original session: "+err.Error())
		} else {
			rep.OriginalClosed = true
		}
	}
	if e.WorkspaceSnapshot != "" {
		prev, _, _, err := snap.Snapshot()
		if err != nil {
			return newID, rep, fmt.Errorf("snapshot the workspace before restoring (nothing was changed): %w", err)
		}
		rep.PreviousWorkspace = prev
		rs, err := snap.Restore(e.WorkspaceSnapshot)
		rep.Files = rs
		if err != nil {
			return newID, rep, err
		}
		for p, why := range e.WorkspaceSkipped {
			if _, ok := rs.NotRestored[p]; !ok {
				if rs.NotRestored == nil {
					rs.NotRestored = map[string]string{}
				}
				rs.NotRestored[p] = why
			}
		}
	}
	origin := &Entry{Step: 0, Time: time.Now().UTC(), Session: newID, Task: e.Task, Backend: e.Backend, OK: true,
		WorkspaceSnapshot: e.WorkspaceSnapshot, ResumedFrom: &rep.From, PreviousWorkspace: rep.PreviousWorkspace}
	if rep.StateSnapshot != "" {
		rep.StateSource, rep.StateError = StateFromSnapshot, ""
		origin.StateSnapshot = rep.StateSnapshot
		known := si
		if known != nil && known.Error != "" {
			known = nil // the step's variable names are unknown
		}
		checkSnapshotRestore(ctx, x, newID, e.Backend, known, rep)
		finishReport(rep)
		appendOrigin(workspace, newID, origin, rep)
		return newID, rep, nil
	}
	if rep.StateError == "" {
		origin.State = e.State
	}
	if rep.StateError == "" {
		out, res, err := x.Exec(ctx, newID, e.Backend, loadCode(e.State))
		var loaded struct {
			Restored []string          `json:"restored"`
			Failed   map[string]string `json:"failed"`
		}
		switch {
		case err != nil:
			rep.StateError = "load_state: " + err.Error()
		case res.Error != sdk.ErrorNone || res.ExitCode != 0:
			rep.StateError = "load_state: " + strings.TrimSpace(res.Message)
		default:
			if perr := parseLastJSON(out, &loaded); perr != nil {
				rep.StateError = "load_state: unexpected output: " + perr.Error()
			}
		}
		if rep.StateError == "" {
			rep.Restored = append(rep.Restored, loaded.Restored...)
			for k, v := range loaded.Failed {
				rep.NotRestored[k] = v
			}
		} else {
			origin.State = ""
		}
	}
	if rep.StateError != "" && si != nil {
		for _, name := range si.Saved {
			rep.NotRestored[name] = rep.StateError
		}
	}
	for k, v := range siSkipped(si) {
		if _, ok := rep.NotRestored[k]; !ok {
			rep.NotRestored[k] = v
		}
	}
	rep.StateSource = StateFromPickle
	if len(rep.Restored) == 0 && rep.StateError != "" {
		rep.StateSource = StateFromNothing
	}
	finishReport(rep)
	appendOrigin(workspace, newID, origin, rep)
	return newID, rep, nil
}

// finishReport sorts the report and says, in a note, where the variables
// came from and which could not be restored.
func finishReport(rep *Report) {
	sort.Strings(rep.Restored)
	missing := strings.Join(sortedNames(rep.NotRestored), ", ")
	switch rep.StateSource {
	case StateFromSnapshot:
		note := "state restored from the backend's snapshot " + rep.StateSnapshot + " of step " + fmt.Sprint(rep.From.Step)
		if missing != "" {
			note += "; it did not carry: " + missing
		}
		rep.Notes = append(rep.Notes, note)
	default:
		note := "state restored from the kernel pickle (" + rep.SnapshotFallback + ")"
		if rep.SnapshotFallback == "" {
			note = "state restored from the kernel pickle"
		}
		if missing != "" {
			note += "; variables that could not be restored: " + missing
		}
		rep.Notes = append(rep.Notes, note)
	}
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkSnapshotRestore lists which of the step's variables (those its
// pickle sidecar saved or skipped) the restored session has, so a backend
// snapshot that carries less than the sandbox's whole state is reported,
// not trusted.
func checkSnapshotRestore(ctx context.Context, x Executor, id, backend string, si *StateInfo, rep *Report) {
	out, res, err := x.Exec(ctx, id, backend, InternalMarker+"__import__('builtins').print(__import__('json').dumps(sorted(globals())))\n")
	var names []string
	switch {
	case err != nil:
		rep.Notes = append(rep.Notes, "could not list the restored variables: "+err.Error())
		return
	case res.Error != sdk.ErrorNone || res.ExitCode != 0:
		rep.Notes = append(rep.Notes, "could not list the restored variables: "+strings.TrimSpace(res.Message))
		return
	default:
		if perr := parseLastJSON(out, &names); perr != nil {
			rep.Notes = append(rep.Notes, "could not list the restored variables: "+perr.Error())
			return
		}
	}
	present := map[string]bool{}
	for _, n := range names {
		present[n] = true
	}
	if si == nil {
		for _, n := range names {
			if !strings.HasPrefix(n, "_") {
				rep.Restored = append(rep.Restored, n)
			}
		}
		return
	}
	expected := append([]string(nil), si.Saved...)
	expected = append(expected, sortedNames(si.Skipped)...)
	for _, n := range expected {
		if present[n] {
			rep.Restored = append(rep.Restored, n)
		} else {
			rep.NotRestored[n] = "not in the session restored from the backend snapshot"
		}
	}
}

func appendOrigin(workspace, newID string, origin *Entry, rep *Report) {
	l, err := OpenLog(workspace, newID)
	if err == nil {
		err = l.Append(origin)
	}
	if err != nil {
		rep.Notes = append(rep.Notes, "could not write the new session's replay origin: "+err.Error())
	}
}

func siSkipped(si *StateInfo) map[string]string {
	if si == nil {
		return nil
	}
	return si.Skipped
}

// RestoreWorkspace makes workspace equal to snapshot id (e.g. a report's
// PreviousWorkspace), leaving .replay, .mcpruntime and exclude alone.
func RestoreWorkspace(workspace, id string, exclude ...string) (*RestoreStats, error) {
	return NewSnapshotter(workspace, exclude...).Restore(id)
}
