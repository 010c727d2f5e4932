// Package replay records every execution of a session to an append-only,
// fsynced log under <workspace>/.replay, with a content-addressed snapshot
// of the workspace and a pickle of the kernel's variables per step, and
// resumes or forks a session from any recorded step.
//
// Layout, all under <workspace>/.replay:
//
//	<session>.jsonl          one JSON line per step (Entry), fsynced
//	objects/<sha256>         workspace file contents, each stored once
//	manifests/<id>.json      one workspace snapshot; id = sha256 of the manifest
//	state/<session>-<n>.pkl  the kernel's variables after step n (save_state)
//	state/<session>-<n>.pkl.json  what was saved and skipped, or why not
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Dir is the replay directory's name inside a workspace.
const Dir = ".replay"

// Entry is one line of a replay log: one finished execution. Step 0, when
// present, is not an execution but the origin of a resumed or forked
// session (ResumedFrom), carrying the workspace and state it started from.
type Entry struct {
	Step       int       `json:"step"`
	Time       time.Time `json:"time"`
	Session    string    `json:"session"`
	Task       string    `json:"task,omitempty"`
	Code       string    `json:"code"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Exit       int       `json:"exit"`
	OK         bool      `json:"ok"`
	DurationMs float64   `json:"duration_ms"`
	Backend    string    `json:"backend"`
	// WorkspaceSnapshot is the id of the workspace manifest after the step.
	WorkspaceSnapshot string `json:"workspace_snapshot,omitempty"`
	// WorkspaceSkipped lists files left out of the snapshot, with why.
	WorkspaceSkipped map[string]string `json:"workspace_skipped,omitempty"`
	// State is the kernel state pickle after the step, relative to the
	// workspace. It is written just after the line; its .json sidecar
	// says whether that succeeded (see StateInfo).
	State     string                `json:"state,omitempty"`
	HostCalls []*sdk.HostCallNotice `json:"host_calls,omitempty"`
	// HostUsage is what the session's host calls (ask_llm, tools) have
	// consumed so far, including this step.
	HostUsage   *bridge.Usage `json:"host_usage,omitempty"`
	Error       string        `json:"error,omitempty"`
	ErrorKind   sdk.ErrorKind `json:"error_kind,omitempty"`
	StateLost   bool          `json:"state_lost,omitempty"`
	Truncated   bool          `json:"output_truncated,omitempty"`
	ResumedFrom *Origin       `json:"resumed_from,omitempty"`
	// RecordError says what part of recording failed (snapshot, ...).
	RecordError string `json:"record_error,omitempty"`
}

// Origin is where a resumed or forked session started.
type Origin struct {
	Session string `json:"session"`
	Step    int    `json:"step"`
	Fork    bool   `json:"fork"`
}

// Problem is a line of a log that could not be read.
type Problem struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Reason) }

// LogPath is the replay log of session in workspace.
func LogPath(workspace, sessionID string) string {
	return filepath.Join(workspace, Dir, sessionID+".jsonl")
}

// Log is one session's replay log.
type Log struct {
	path string
	mu   sync.Mutex
}

// OpenLog returns the log of session in workspace (created on first Append).
func OpenLog(workspace, sessionID string) (*Log, error) {
	if err := session.ValidateID(sessionID); err != nil {
		return nil, err
	}
	return &Log{path: LogPath(workspace, sessionID)}, nil
}

// Path is the log file.
func (l *Log) Path() string { return l.path }

// Append writes e as one line and fsyncs it. If an earlier writer crashed
// mid-line, the partial line is closed off first so it cannot swallow this
// one; earlier complete lines are never rewritten.
func (l *Log) Append(e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// Read returns the log's entries. Lines that do not parse (a truncated
// last line after a crash, hand edits) are skipped and reported as
// problems; they never make Read fail. The error is for an unreadable file.
func (l *Log) Read() ([]Entry, []Problem, error) { return ReadFile(l.path) }

// ReadFile reads a replay log file; see Log.Read.
func ReadFile(path string) ([]Entry, []Problem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var (
		entries  []Entry
		problems []Problem
	)
	r := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			complete := bytes.HasSuffix(line, []byte("\n"))
			var e Entry
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				reason := "not valid JSON: " + jerr.Error()
				if !complete {
					reason = "truncated last line (a write was interrupted): " + jerr.Error()
				}
				problems = append(problems, Problem{Line: n, Reason: reason})
			} else {
				entries = append(entries, e)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return entries, append(problems, Problem{Line: n, Reason: "read: " + err.Error()}), nil
		}
	}
	return entries, problems, nil
}

// SessionSummary describes one recorded session.
type SessionSummary struct {
	Session     string    `json:"session"`
	Steps       int       `json:"steps"`
	LastStep    int       `json:"last_step"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Backend     string    `json:"backend"`
	Task        string    `json:"task,omitempty"`
	Failed      int       `json:"failed"`
	ResumedFrom *Origin   `json:"resumed_from,omitempty"`
	Problems    []Problem `json:"problems,omitempty"`
}

// List summarises every session recorded in workspace, oldest first.
func List(workspace string) ([]SessionSummary, error) {
	names, err := filepath.Glob(filepath.Join(workspace, Dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	out := []SessionSummary{}
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".jsonl")
		entries, problems, err := ReadFile(name)
		if err != nil {
			problems = append(problems, Problem{Reason: err.Error()})
		}
		s := SessionSummary{Session: id, Problems: problems}
		for _, e := range entries {
			if e.ResumedFrom != nil && e.Step == 0 {
				s.ResumedFrom = e.ResumedFrom
			}
			if s.First.IsZero() || e.Time.Before(s.First) {
				s.First = e.Time
			}
			if e.Time.After(s.Last) {
				s.Last = e.Time
			}
			if e.Backend != "" {
				s.Backend = e.Backend
			}
			if e.Task != "" {
				s.Task = e.Task
			}
			if e.Step == 0 {
				continue
			}
			s.Steps++
			if e.Step > s.LastStep {
				s.LastStep = e.Step
			}
			if !e.OK {
				s.Failed++
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out, nil
}

// ErrNoStep is returned for a step that is not in the log.
var ErrNoStep = errors.New("no such step")

// ErrNoSession is returned for a session without a replay log.
var ErrNoSession = errors.New("no replay log for session")

// Show returns the entries of session; step > 0 (or 0 for a resumed
// session's origin) selects one, step < 0 all. When a step appears more
// than once (a log hand-merged or a crashed writer), the last wins.
func Show(workspace, sessionID string, step int) ([]Entry, []Problem, error) {
	l, err := OpenLog(workspace, sessionID)
	if err != nil {
		return nil, nil, err
	}
	entries, problems, err := l.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w %s in %s", ErrNoSession, sessionID, filepath.Join(workspace, Dir))
	}
	if err != nil {
		return nil, nil, err
	}
	if step < 0 {
		return entries, problems, nil
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Step == step {
			return []Entry{entries[i]}, problems, nil
		}
	}
	last := 0
	for _, e := range entries {
		last = max(last, e.Step)
	}
	return nil, problems, fmt.Errorf("%w %d in session %s (it has steps 1..%d)", ErrNoStep, step, sessionID, last)
}
