// Package agent is the loop in which a language model writes Python that
// runs in a sandbox session: each reply's python blocks are executed, their
// output becomes the next message, and a reply without code ends the run
// with its text as the answer.
package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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

// StepHook sees each executed step; the skill registry is one.
type StepHook func(ctx context.Context, s *session.Session, step *Step)

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
	// ObservationLimit truncates what the model sees of one step's output.
	ObservationLimit int
	// Listing describes skills and tools for the prompt.
	Listing string
	// AfterStep runs after every executed step.
	AfterStep StepHook
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
	Logger hclog.Logger
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
	N        int             `json:"step"`
	Code     string          `json:"code"`
	Stdout   string          `json:"stdout"`
	Stderr   string          `json:"stderr"`
	Result   *sdk.ExecResult `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Task     string          `json:"-"`
	Usage    llm.Usage       `json:"usage"`
	Duration time.Duration   `json:"duration_ns"`
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

const systemPrompt = `You solve tasks by writing Python 3 that runs in a sandbox session.
Rules:
- Put code in fenced blocks: ` + "```python ... ```" + `. Every block in your reply runs, in order, in the same session; variables persist between replies.
- You will see each block's stdout, stderr and errors. Print what you need to see.
- The working directory is a persistent workspace; files you write stay there.
- ask_llm(prompt) asks a language model (use it to process large inputs in pieces).
- When you have the final answer, reply with plain text and NO code block. That text is returned to the user.
- Prefer small functions with type annotations: working functions are saved as reusable skills.`

var fence = regexp.MustCompile("(?s)```(?:python|py|python3)[ \\t]*\\r?\\n(.*?)```")

// CodeBlocks returns the python blocks of a reply, in order.
func CodeBlocks(reply string) []string {
	var out []string
	for _, m := range fence.FindAllStringSubmatch(reply, -1) {
		if code := strings.TrimSpace(m[1]); code != "" {
			out = append(out, m[1])
		}
	}
	return out
}

// Run runs task to an answer or a limit.
func Run(ctx context.Context, m *session.Manager, model Chatter, task string, opts Options) (*Result, error) {
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
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.Budget)
	defer cancel()
	s, err := m.Open(ctx, session.Options{ID: opts.SessionID, Backend: opts.Backend})
	if err != nil {
		return nil, err
	}
	res := &Result{Task: task, Session: s.ID}
	defer func() { res.Duration = time.Since(start) }()

	system := systemPrompt
	if opts.Listing != "" {
		system += "\n\n" + opts.Listing
	}
	msgs := []llm.Message{{Role: "system", Content: system}, {Role: "user", Content: task}}
	r := &runner{m: m, s: s, task: task, opts: opts, res: res}
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
				return res, nil
			}
		}
		msgs = append(msgs, llm.Message{Role: "user", Content: obs.String()})
	}
	for {
		reply, err := model.Chat(ctx, msgs)
		if err != nil {
			res.Error = budgetOr(ctx, err, opts.Budget)
			return res, nil
		}
		res.Replies++
		res.Usage.Add(reply.Usage)
		blocks := CodeBlocks(reply.Content)
		if len(blocks) == 0 {
			res.Answer = strings.TrimSpace(reply.Content)
			if res.Answer == "" {
				res.Error = "the model returned an empty reply"
				return res, nil
			}
			res.Success = true
			return res, nil
		}
		if codeReplies++; codeReplies > opts.MaxSteps {
			res.Error = fmt.Sprintf("stopped after %d steps without a final answer (agent.max_steps)", opts.MaxSteps)
			return res, nil
		}
		if opts.OnReply != nil {
			if err := opts.OnReply(ctx, codeReplies, reply.Content); err != nil {
				res.Error = fmt.Sprintf("recording reply %d: %v", codeReplies, err)
				return res, nil
			}
		}
		msgs = append(msgs, llm.Message{Role: "assistant", Content: reply.Content})
		var obs strings.Builder
		if stop := r.runBlocks(ctx, codeReplies, blocks, 0, reply.Usage, &obs); stop {
			return res, nil
		}
		msgs = append(msgs, llm.Message{Role: "user", Content: obs.String()})
	}
}

// runner runs the blocks of one run's replies.
type runner struct {
	m    *session.Manager
	s    *session.Session
	task string
	opts Options
	res  *Result
}

// runBlocks runs blocks[from:] of turn's reply, appending each step's
// observation to obs; it reports whether the run must stop (cancelled,
// out of budget, or a step could not be recorded), with res.Error set.
func (r *runner) runBlocks(ctx context.Context, turn int, blocks []string, from int, usage llm.Usage, obs *strings.Builder) bool {
	for _, code := range blocks[from:] {
		step := runStep(ctx, r.m, r.s, code, r.opts, len(r.res.Steps)+1)
		step.Task, step.Usage = r.task, usage
		r.res.Steps = append(r.res.Steps, step)
		if r.opts.AfterStep != nil && step.Result != nil {
			r.opts.AfterStep(ctx, r.s, step)
		}
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

func runStep(ctx context.Context, m *session.Manager, s *session.Session, code string, opts Options, n int) *Step {
	step := &Step{N: n, Code: code}
	start := time.Now()
	var out, errb strings.Builder
	res, err := m.Exec(ctx, s, code, opts.StepTimeout, func(e sdk.Event) {
		switch e.Kind {
		case sdk.EventStdout:
			out.Write(e.Data)
		case sdk.EventStderr:
			errb.Write(e.Data)
		}
	})
	step.Duration = time.Since(start)
	step.Stdout, step.Stderr, step.Result = out.String(), errb.String(), res
	if err != nil {
		step.Error = err.Error()
	}
	return step
}

// observation is what the model sees of a step.
func observation(step *Step, numbered bool, limit int) string {
	var b strings.Builder
	if numbered {
		fmt.Fprintf(&b, "Block %d:\n", step.N)
	}
	b.WriteString("Observation:\n")
	if step.Stdout != "" {
		b.WriteString("stdout:\n" + clip(step.Stdout, limit) + "\n")
	}
	if step.Stderr != "" {
		b.WriteString("stderr:\n" + clip(step.Stderr, limit) + "\n")
	}
	switch {
	case step.Error != "":
		b.WriteString("error: " + step.Error + "\n")
	case step.Result != nil && !step.Result.OK():
		fmt.Fprintf(&b, "error (exit %d): %s\n", step.Result.ExitCode, step.Result.Message)
	case step.Stdout == "" && step.Stderr == "":
		b.WriteString("(no output)\n")
	}
	if step.Result != nil && step.Result.StateLost {
		b.WriteString("note: the session was restarted before this block ran; variables defined earlier are gone (workspace files are kept)\n")
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n[... %d more bytes truncated ...]", len(s)-n)
}
