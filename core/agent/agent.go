// Package agent is the loop in which a language model writes Python that
// runs in a sandbox session: each reply's python blocks are executed, their
// output becomes the next message, and a reply without code ends the run
// with its text as the answer.
package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Chatter is the model the loop talks to (*llm.Client).
type Chatter interface {
	Chat(ctx context.Context, msgs []llm.Message, opts ...llm.Option) (*llm.Response, error)
}

// StepHook sees each executed step; the skill registry is one. It may
// set step.Skill to say what became of the step as a skill.
type StepHook func(ctx context.Context, sb Sandbox, step *Step)

// Options bound and shape a run.
type Options struct {
	Backend   string
	SessionID string
	// MaxSteps bounds model replies that contain code (default 10).
	MaxSteps int
	// StepTimeout bounds each code block (0: the backend's limit).
	StepTimeout time.Duration
	// Budget bounds the whole run (default 10m).
	Budget time.Duration
	// ObservationLimit bounds what the model sees of one step's output
	// (its head and tail are kept).
	ObservationLimit int
	// Listing describes skills and tools for the prompt.
	Listing string
	// Environment describes the sandbox for the prompt (nil: not stated).
	Environment *Environment
	// AfterStep runs after every executed step.
	AfterStep StepHook
	// Prior is the conversation of earlier runs in the same session (user
	// and assistant messages), put before the task so the model sees what
	// was done and said there.
	Prior []llm.Message
	// History is the conversation of an earlier, interrupted run to
	// continue: its turns rebuild the message history (each reply and the
	// observation of its steps, as the model saw them), count against
	// MaxSteps, and the blocks of a last turn that did not all run are run
	// first. Pass the same SessionID to keep the session.
	History []Turn
	// OnReply sees each reply that contains code, before its blocks run,
	// with its turn number (from 1, continuing History). A durable run
	// persists it here; an error ends the run.
	OnReply func(ctx context.Context, turn int, reply string) error
	// OnStep sees each step that completed (one cut short by the run's
	// cancellation is not reported: it runs again on resume). A durable run
	// persists it here; an error ends the run.
	OnStep func(ctx context.Context, turn int, step *Step) error
	// OnEvent sees the run's progress as it happens (Event).
	OnEvent func(Event)
	// Input, when set, is loaded into the session as the variable
	// `context` before the first step, through Inputs (which the
	// runtime's built-in "input" helper reads); the prompt describes it
	// instead of containing it. MaxDepth is what the description says of
	// recursive ask_llm (0: not offered).
	Input    *Input
	Inputs   *Inputs
	MaxDepth int
	// Vision: the model takes images, so a step's plots go to it as image
	// parts; otherwise it reads a line describing each (and its file).
	Vision bool
	// OutputsDir is where rich outputs are saved as files (none if empty).
	OutputsDir string
	Logger     hclog.Logger
}

// Turn is one reply of the model that contained code, and the steps its
// blocks ran (fewer than its blocks when the run stopped in between).
type Turn struct {
	N     int     `json:"turn"`
	Reply string  `json:"reply"`
	Steps []*Step `json:"steps"`
}

// Step is one executed code block.
type Step struct {
	N      int             `json:"step"`
	Code   string          `json:"code"`
	Stdout string          `json:"stdout"`
	Stderr string          `json:"stderr"`
	Result *sdk.ExecResult `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Skill says what became of the step as a skill: the name it was
	// saved as, or why it was not saved (set by AfterStep).
	Skill    string        `json:"skill,omitempty"`
	Task     string        `json:"-"`
	Usage    llm.Usage     `json:"usage"`
	Duration time.Duration `json:"duration_ns"`
	// Outputs are the step's rich outputs (plots, tables).
	Outputs []Output `json:"outputs,omitempty"`
	// images go to a vision model with the step's observation.
	images []llm.Image
}

// Result is the outcome of a run.
type Result struct {
	Task     string        `json:"task"`
	Answer   string        `json:"answer"`
	Success  bool          `json:"success"`
	Error    string        `json:"error,omitempty"`
	Session  string        `json:"session"`
	Steps    []*Step       `json:"steps"`
	Replies  int           `json:"replies"`
	Duration time.Duration `json:"duration_ns"`
	Usage    llm.Usage     `json:"usage"`
}

// Run runs task to an answer or a limit in session opts.SessionID of m
// (created on first use).
func Run(ctx context.Context, m *session.Manager, model Chatter, task string, opts Options) (*Result, error) {
	if strings.TrimSpace(task) == "" {
		return nil, errors.New("empty task")
	}
	s, err := m.Open(ctx, session.Options{ID: opts.SessionID, Backend: opts.Backend})
	if err != nil {
		return nil, err
	}
	return RunIn(ctx, ManagerSandbox(m, s), model, task, opts)
}

// RunIn runs task to an answer or a limit in sandbox sb.
func RunIn(ctx context.Context, sb Sandbox, model Chatter, task string, opts Options) (*Result, error) {
	if strings.TrimSpace(task) == "" {
		return nil, errors.New("empty task")
	}
	if opts.MaxSteps <= 0 {
		opts.MaxSteps = 10
	}
	if opts.Budget <= 0 {
		opts.Budget = 10 * time.Minute
	}
	if opts.ObservationLimit <= 0 {
		opts.ObservationLimit = 16 << 10
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.Budget)
	defer cancel()
	res := &Result{Task: task, Session: sb.ID()}
	r := &runner{sb: sb, task: task, opts: opts, res: res}
	if err := r.loadInput(ctx); err != nil {
		res.Error = err.Error()
	} else {
		r.loop(ctx, model)
	}
	res.Duration = time.Since(start)
	if res.Success {
		r.emit(Event{Kind: EventAnswer, Answer: res.Answer})
	} else {
		r.emit(Event{Kind: EventError, Error: res.Error})
	}
	return res, nil
}

// runner carries out one run.
type runner struct {
	sb   Sandbox
	task string
	opts Options
	res  *Result
	// inputNote describes opts.Input after the task.
	inputNote string
}

// loop talks to the model until an answer or a limit, with r.res set.
func (r *runner) loop(ctx context.Context, model Chatter) {
	opts, res := r.opts, r.res
	msgs := []llm.Message{{Role: "system", Content: systemPrompt(opts.Environment, opts.Listing)}}
	msgs = append(msgs, opts.Prior...)
	msgs = append(msgs, llm.Message{Role: "user", Content: r.task + r.inputNote})
	codeReplies := 0
	for i, t := range opts.History {
		// A resumed run: the model sees its earlier replies and their
		// observations exactly as before.
		codeReplies++
		res.Replies++
		msgs = append(msgs, llm.Message{Role: "assistant", Content: t.Reply})
		blocks := CodeBlocks(t.Reply)
		var obs strings.Builder
		for _, st := range t.Steps {
			res.Steps = append(res.Steps, st)
			obs.WriteString(observation(st, len(blocks) > 1, opts.ObservationLimit))
		}
		if len(t.Steps) > 0 {
			res.Usage.Add(t.Steps[0].Usage)
		}
		// Only the last turn can have blocks that never ran: the run
		// stopped while it executed them.
		if i == len(opts.History)-1 && len(t.Steps) < len(blocks) {
			var usage llm.Usage
			if len(t.Steps) > 0 {
				usage = t.Steps[0].Usage
			}
			if stop := r.runBlocks(ctx, t.N, blocks, len(t.Steps), usage, &obs); stop {
				return
			}
		}
		// Images of steps run before a resume are not kept: their lines
		// describe them.
		msgs = append(msgs, llm.Message{Role: "user", Content: obs.String(), Images: stepImages(res.Steps)})
	}
	for {
		reply, err := model.Chat(ctx, msgs)
		if err != nil {
			res.Error = budgetOr(ctx, err, opts.Budget)
			return
		}
		res.Replies++
		res.Usage.Add(reply.Usage)
		p := parseReply(reply.Content)
		if len(p.code) == 0 && p.empty == 0 {
			res.Answer = strings.TrimSpace(reply.Content)
			if res.Answer == "" {
				res.Error = "the model returned an empty reply"
				return
			}
			res.Success = true
			return
		}
		if codeReplies++; codeReplies > opts.MaxSteps {
			res.Error = fmt.Sprintf("stopped after %d steps without a final answer (agent.max_steps)", opts.MaxSteps)
			return
		}
		msgs = append(msgs, llm.Message{Role: "assistant", Content: reply.Content})
		if len(p.code) == 0 {
			// Only empty blocks: neither code nor an answer. The model is
			// told so and the reply counts as a step.
			opts.Logger.Debug("the model's reply held only empty code blocks", "reply", codeReplies)
			msgs = append(msgs, llm.Message{Role: "user", Content: emptyBlockNotice})
			continue
		}
		if opts.OnReply != nil {
			if err := opts.OnReply(ctx, codeReplies, reply.Content); err != nil {
				res.Error = fmt.Sprintf("recording reply %d: %v", codeReplies, err)
				return
			}
		}
		var obs strings.Builder
		first := len(r.res.Steps)
		if stop := r.runBlocks(ctx, codeReplies, p.code, 0, reply.Usage, &obs); stop {
			return
		}
		msgs = append(msgs, llm.Message{Role: "user", Content: obs.String(), Images: stepImages(r.res.Steps[first:])})
	}
}

// runBlocks runs blocks[from:] of turn's reply, appending each step's
// observation to obs; it reports whether the run must stop (cancelled,
// out of budget, or a step could not be recorded), with res.Error set.
func (r *runner) runBlocks(ctx context.Context, turn int, blocks []string, from int, usage llm.Usage, obs *strings.Builder) bool {
	for _, code := range blocks[from:] {
		step := r.runStep(ctx, turn, code, len(r.res.Steps)+1)
		step.Task, step.Usage = r.task, usage
		r.res.Steps = append(r.res.Steps, step)
		if r.opts.AfterStep != nil && step.Result != nil {
			r.opts.AfterStep(ctx, r.sb, step)
		}
		r.emit(stepDone(turn, step))
		obs.WriteString(observation(step, len(blocks) > 1, r.opts.ObservationLimit))
		if ctx.Err() != nil {
			r.res.Error = budgetOr(ctx, ctx.Err(), r.opts.Budget)
			return true
		}
		if r.opts.OnStep != nil {
			if err := r.opts.OnStep(ctx, turn, step); err != nil {
				r.res.Error = fmt.Sprintf("recording step %d: %v", step.N, err)
				return true
			}
		}
	}
	return false
}

func budgetOr(ctx context.Context, err error, budget time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("run budget of %s exhausted (agent.budget)", budget)
	}
	return err.Error()
}

// runStep runs one block as step n of turn, streaming its output as events.
func (r *runner) runStep(ctx context.Context, turn int, code string, n int) *Step {
	step := &Step{N: n, Code: code}
	r.emit(Event{Kind: EventStepStarted, Step: n, Turn: turn, Code: code})
	start := time.Now()
	var out, errb strings.Builder
	res, err := r.sb.Exec(ctx, code, r.opts.StepTimeout, func(e sdk.Event) {
		var stream string
		switch e.Kind {
		case sdk.EventStdout:
			out.Write(e.Data)
			stream = "stdout"
		case sdk.EventStderr:
			errb.Write(e.Data)
			stream = "stderr"
		case sdk.EventDisplay:
			r.addOutput(step, e.Display)
			r.emit(Event{Kind: EventDisplay, Step: n, Turn: turn, Display: e.Display})
			return
		default:
			return
		}
		r.emit(Event{Kind: EventOutput, Step: n, Turn: turn, Stream: stream, Data: string(e.Data)})
	})
	step.Duration = time.Since(start)
	step.Stdout, step.Stderr, step.Result = out.String(), errb.String(), res
	if err != nil {
		step.Error = err.Error()
	}
	return step
}
