package agent

import (
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Kinds of Event, in the order a run produces them: each step is
// step_started, output (any number), step_done; the run ends with answer
// or error.
const (
	EventStepStarted = "step_started"
	EventOutput      = "output"
	EventDisplay     = "display"
	EventStepDone    = "step_done"
	EventAnswer      = "answer"
	EventError       = "error"
)

// Event is one moment of a run as it happens (Options.OnEvent): what
// `run` prints on stderr, and `run --json` streams as NDJSON.
type Event struct {
	Kind string    `json:"event"`
	Time time.Time `json:"time"`
	// Step and Turn number the step (step_started, output, step_done).
	Step int `json:"step,omitempty"`
	Turn int `json:"turn,omitempty"`
	// Code is the block that runs (step_started).
	Code string `json:"code,omitempty"`
	// Stream (stdout or stderr) and Data are output as it is printed.
	Stream string `json:"stream,omitempty"`
	Data   string `json:"data,omitempty"`
	// Display is a rich output (display): a plot, a table.
	Display *sdk.Display `json:"display,omitempty"`
	// OK, Summary, DurationMs and Skill describe a finished step: whether
	// it succeeded, a one-line account of its output, how long it took
	// and what became of it as a skill.
	OK         *bool   `json:"ok,omitempty"`
	Summary    string  `json:"summary,omitempty"`
	DurationMs float64 `json:"duration_ms,omitempty"`
	Skill      string  `json:"skill,omitempty"`
	// Answer is the final answer (answer); Error why the run stopped
	// without one (error).
	Answer string `json:"answer,omitempty"`
	Error  string `json:"error,omitempty"`
}

// emit hands e to the run's OnEvent, if any.
func (r *runner) emit(e Event) {
	if r.opts.OnEvent == nil {
		return
	}
	e.Time = time.Now().UTC()
	r.opts.OnEvent(e)
}

// stepDone is the step_done event of step.
func stepDone(turn int, step *Step) Event {
	ok := step.Error == "" && (step.Result == nil || step.Result.OK())
	return Event{Kind: EventStepDone, Step: step.N, Turn: turn, OK: &ok, Summary: summary(step),
		DurationMs: float64(step.Duration.Microseconds()) / 1000, Skill: step.Skill}
}
