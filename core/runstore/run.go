package runstore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
)

// Status is where a run stands.
type Status string

// The statuses of a run. Only Running is not final; Interrupted, Failed
// and Cancelled runs can be resumed.
const (
	Running Status = "running"
	Done    Status = "done"
	Failed  Status = "failed"
	// Cancelled is a run its user stopped.
	Cancelled Status = "cancelled"
	// Interrupted is a run whose process stopped under it: it died, or
	// shut down and checkpointed the run.
	Interrupted Status = "interrupted"
)

// Resumable reports whether a run in status s can be continued.
func (s Status) Resumable() bool { return s == Interrupted || s == Failed || s == Cancelled }

// Errors of the store's operations.
var (
	// ErrNotFound: no run has that id.
	ErrNotFound = errors.New("no such run")
	// ErrNotResumable: the run is running or done.
	ErrNotResumable = errors.New("run cannot be resumed")
)

// Run is one agent run as stored.
type Run struct {
	ID      string    `json:"id"`
	Task    string    `json:"task"`
	Backend string    `json:"backend,omitempty"`
	Session string    `json:"session,omitempty"`
	Status  Status    `json:"status"`
	Started time.Time `json:"started"`
	// Finished is when the run last stopped (nil while it runs).
	Finished *time.Time `json:"finished,omitempty"`
	// Result is the runner's JSON result of the last attempt.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Owner is the store instance (process) that runs or last ran it.
	Owner string `json:"-"`
	// Turns are the run's code-bearing replies and their completed steps,
	// in order; Get fills them, List does not.
	Turns []agent.Turn `json:"-"`
}

// Update is a change of a run's status.
type Update struct {
	Status Status
	// Error says why a run failed or stopped.
	Error string
	// Result, if set, replaces the stored result.
	Result json.RawMessage
}

// NewID returns a fresh run id ("r-" and 16 hex digits).
func NewID() string {
	b := make([]byte, 8)
	// crypto/rand.Read never fails on the platforms Go supports (it aborts
	// the process instead).
	_, _ = rand.Read(b)
	return "r-" + hex.EncodeToString(b)
}
