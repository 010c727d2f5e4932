package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/runstore"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// addAgentCommands adds run, skills and replay.
func addAgentCommands(root *cobra.Command, a *app) {
	root.AddCommand(runCmd(a), skillsCmd(a), replayCmd(a))
}

// newLLM returns the configured model client, or nil when none is set (ask_llm
// then tells sandbox code how to configure one).
func newLLM(cfg *config.Config, logger hclog.Logger) bridge.LLM {
	c := llmClient(cfg, logger)
	if c == nil {
		return nil
	}
	return c
}

func llmClient(cfg *config.Config, logger hclog.Logger) *llm.Client {
	if cfg.LLM.BaseURL == "" {
		return nil
	}
	return &llm.Client{BaseURL: cfg.LLM.BaseURL, APIKey: cfg.LLM.APIKey, Model: cfg.LLM.Model,
		Temperature: cfg.LLM.Temperature, MaxTokens: cfg.LLM.MaxTokens, Timeout: cfg.LLM.Timeout, Deadline: cfg.LLM.Deadline,
		Logger: logger.Named("llm")}
}

// runFlags are the flags of `mcpruntime run`.
type runFlags struct {
	backend, session, resume string
	context                  string
	step                     int
	asJSON, quiet            bool
	maxSteps                 int
}

func runCmd(a *app) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run TASK | run --resume ID [--step N] [TASK]",
		Short: "Let the language model solve TASK by writing Python that runs in the sandbox",
		Long: `Run the agent loop: the model (llm block of runtime.hcl, or OPENAI_BASE_URL /
OPENAI_API_KEY / MCPRUNTIME_MODEL) writes Python; every python block of a
reply runs in one sandbox session and its output is the next message; a reply
without code ends the run and is printed as the answer. Self-contained working
functions are saved as skills (skills.auto_save). Progress (each step, its
code, a summary of its output) goes to standard error (--quiet: none);
--json streams the run as NDJSON events on standard output, the result last.

Every run is kept in the state dir with its steps as they happen, like the
runs of the HTTP API (POST /v1/runs). --resume RUN_ID continues an
interrupted, failed or cancelled run from its last completed step, in its
session: the model sees the conversation so far, and the completed steps
count against agent.max_steps.

--session ID runs in session ID of the workspace daemon (the one
"exec --session ID" uses, or one "replay resume|fork" created), keeping its
variables; the runs recorded earlier in that session (and, for a resumed or
forked session, in its origin up to the step it started from) are put
before the task, so the model sees that conversation.

--resume SESSION [--step N] time-travels a recorded session: a new daemon
session gets the sandbox state of step N (default: the last; see "replay
resume"), and the run of SESSION that step belongs to continues from there
with its conversation up to that step; with a TASK, a new run starts there
instead, after that conversation.

Exit status 0 when the run produced an answer, 1 when it failed or hit a
limit (agent.max_steps, agent.budget), 125 when the runtime failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRun(cmd, a, &f, args) },
	}
	cmd.Flags().StringVar(&f.backend, "backend", "", "sandbox backend (default runtime.backend)")
	cmd.Flags().StringVar(&f.session, "session", "", "run in this session of the workspace daemon (created on first use), after the conversation of its earlier runs")
	cmd.Flags().StringVar(&f.resume, "resume", "", "continue the stored run `ID`, or a recorded session from its last step (or --step)")
	cmd.Flags().IntVar(&f.step, "step", 0, "with --resume SESSION: the recorded step to continue from")
	cmd.Flags().IntVar(&f.maxSteps, "max-steps", 0, "override agent.max_steps")
	cmd.Flags().StringVar(&f.context, "context", "", "load `FILE|DIR|-` into the session as the variable context (a str, or a dict of path → text) instead of the prompt, which only describes it")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "stream NDJSON events (step_started, output, step_done, answer, error), then the result as the last line")
	cmd.Flags().BoolVar(&f.quiet, "quiet", false, "no progress on standard error")
	return cmd
}

func runRun(cmd *cobra.Command, a *app, f *runFlags, args []string) error {
	switch {
	case f.resume == "" && len(args) == 0:
		return &exitError{code: exitUsage, err: errors.New("run takes a TASK, or --resume ID")}
	case f.resume == "" && cmd.Flags().Changed("step"):
		return &exitError{code: exitUsage, err: errors.New("--step goes with --resume SESSION")}
	case f.resume != "" && (f.backend != "" || f.session != ""):
		return &exitError{code: exitUsage, err: errors.New("--resume continues a run in its own backend and session")}
	case f.context != "" && (f.resume != "" || f.session != ""):
		return &exitError{code: exitUsage, err: errors.New("--context starts a new run in a session of its own")}
	}
	cfg, err := a.load()
	if err != nil {
		return err
	}
	model := llmClient(cfg, a.log())
	if model == nil {
		return &exitError{code: exitUsage, err: llm.ErrNotConfigured}
	}
	var input *agent.Input
	if f.context != "" {
		if input, err = agent.LoadInput(f.context, cmd.InOrStdin(), cfg.Agent.InputLimit); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pr := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), f.asJSON, f.quiet)
	st, run, att, err := a.prepareRun(ctx, f, args, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	// A run in the daemon's session only uses this process's manager for
	// skill checks and the backend's description: no warm pools.
	newManager := a.manager
	if att.sandbox != nil {
		newManager = a.oneShotManager
	}
	m, err := newManager()
	if err != nil {
		return err
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	rec := recordReplay(a, m)
	defer rec.Wait()
	req := agentRequest{task: run.Task, backend: run.Backend, session: run.Session, maxSteps: f.maxSteps, history: run.Turns,
		sandbox: att.sandbox, prior: att.prior, onEvent: pr.event, input: input}
	res, err := a.runDurable(ctx, st, run.ID, req, func(req agentRequest) (*agent.Result, error) {
		return a.runAgent(ctx, m, rec, model, req)
	})
	if err != nil {
		return &exitError{code: exitRuntime, err: err}
	}
	pr.result(res)
	if !res.Success {
		if st != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "mcpruntime: run %s stopped; `mcpruntime run --resume %s` continues it\n", run.ID, run.ID)
		}
		if f.asJSON {
			return &exitError{code: 1}
		}
		return &exitError{code: 1, err: errors.New("run failed: " + res.Error)}
	}
	return nil
}

// attachment is where a run's code runs when not in a session of its own
// process, and the conversation of earlier runs it continues after.
type attachment struct {
	sandbox agent.Sandbox
	prior   []llm.Message
}

// prepareRun opens the run store and decides the run to carry out: a new
// one (in a daemon session with --session), a stored one (--resume RUN_ID),
// or one continued from a recorded session's step (--resume SESSION).
func (a *app) prepareRun(ctx context.Context, f *runFlags, args []string, stderr io.Writer) (*runstore.Store, *runstore.Run, attachment, error) {
	cfg := a.cfg
	if f.resume != "" && !f.isRunID(ctx, a) {
		return a.resumeSession(ctx, f, args, stderr)
	}
	if f.resume != "" && len(args) > 0 {
		return nil, nil, attachment{}, &exitError{code: exitUsage, err: errors.New("--resume RUN_ID continues that run's task: give no TASK")}
	}
	st, run, err := a.openRun(ctx, f.resume, args, f.backend, f.session)
	if err != nil {
		return nil, nil, attachment{}, err
	}
	var att attachment
	switch {
	case f.session != "":
		c, _, err := daemon.Ensure(ctx, cfg, a.daemonArgs())
		if err != nil {
			closeStore(st)
			return nil, nil, att, &exitError{code: exitRuntime, err: err}
		}
		sb, err := attachDaemon(ctx, c, f.session, f.backend, cfg.Backend)
		if err != nil {
			closeStore(st)
			return nil, nil, att, &exitError{code: 1, err: err}
		}
		att.sandbox = sb
		run.Backend = sb.backend
		if st != nil {
			runs, err := sessionRuns(ctx, st, cfg.Workspace, f.session, 0, 0)
			if err != nil {
				a.log().Warn("the session's earlier runs are not restored", "session", f.session, "error", err)
			}
			att.prior = transcript(withoutRun(runs, run.ID), int(cfg.Agent.ObservationLimit))
		}
	case f.resume != "":
		// A stored run continues where its session lives: in the daemon if
		// it holds it, else in this process.
		if c, _, err := daemon.Connect(ctx, cfg); err == nil {
			if sb, err := attachDaemon(ctx, c, run.Session, "", run.Backend); err == nil && sb.backend != "" && live(ctx, c, run.Session) {
				att.sandbox = sb
			}
		}
	}
	return st, run, att, nil
}

// isRunID reports whether --resume names a stored run (not a session).
func (f *runFlags) isRunID(ctx context.Context, a *app) bool {
	if f.step != 0 {
		return false
	}
	st, err := runstore.Open(ctx, a.cfg.StateDir)
	if err != nil {
		return true // openRun reports it
	}
	defer st.Close()
	_, err = st.Get(ctx, f.resume)
	if errors.Is(err, runstore.ErrNotFound) {
		if _, _, rerr := replay.Show(a.cfg.Workspace, f.resume, -1); rerr == nil {
			return false
		}
	}
	return true
}

// resumeSession restores step --step (default the last) of the recorded
// session --resume into a new daemon session, and makes the run that
// continues there: the session's run that step belongs to, with its
// conversation up to it, or a new run of TASK after that conversation.
func (a *app) resumeSession(ctx context.Context, f *runFlags, args []string, stderr io.Writer) (*runstore.Store, *runstore.Run, attachment, error) {
	cfg := a.cfg
	var att attachment
	entries, _, err := replay.Show(cfg.Workspace, f.resume, -1)
	if err != nil {
		return nil, nil, att, &exitError{code: 1, err: err}
	}
	step := f.step
	if step == 0 {
		for _, e := range entries {
			step = max(step, e.Step)
		}
		if step == 0 {
			return nil, nil, att, &exitError{code: 1, err: fmt.Errorf("session %s has no recorded step to resume from", f.resume)}
		}
	}
	if _, _, err := replay.Show(cfg.Workspace, f.resume, step); err != nil {
		return nil, nil, att, &exitError{code: 1, err: err}
	}
	st, err := runstore.Open(ctx, cfg.StateDir)
	if err != nil {
		return nil, nil, att, &exitError{code: exitRuntime, err: err}
	}
	runs, err := sessionRuns(ctx, st, cfg.Workspace, f.resume, step, 0)
	if err != nil {
		st.Close()
		return nil, nil, att, &exitError{code: exitRuntime, err: err}
	}
	var task string
	var history []agent.Turn
	switch {
	case len(args) > 0:
		task = args[0]
	case len(runs) > 0 && runs[len(runs)-1].Session == f.resume:
		cont := runs[len(runs)-1]
		task, history, runs = cont.Task, cont.Turns, runs[:len(runs)-1]
	default:
		st.Close()
		return nil, nil, att, &exitError{code: 1, err: fmt.Errorf("no run of session %s is recorded up to step %d: give a TASK to start one there", f.resume, step)}
	}
	c, _, err := daemon.Ensure(ctx, cfg, a.daemonArgs())
	if err != nil {
		st.Close()
		return nil, nil, att, &exitError{code: exitRuntime, err: err}
	}
	id, rep, err := replay.ResumeWith(ctx, daemonExec{c}, cfg.Workspace, f.resume, step, false, cfg.StateDir)
	if err != nil {
		st.Close()
		return nil, nil, att, &exitError{code: exitRuntime, err: err}
	}
	if !f.quiet && !f.asJSON {
		printReport(stderr, rep)
	}
	att.sandbox = daemonSandbox{c: c, id: id, backend: rep.Backend}
	att.prior = transcript(runs, int(cfg.Agent.ObservationLimit))
	run := &runstore.Run{ID: runstore.NewID(), Task: task, Backend: rep.Backend, Session: id, Status: runstore.Running, Started: time.Now().UTC()}
	// The continued turns are the new run's own: a later --resume of it
	// finds them.
	err = st.Create(ctx, *run)
	for _, t := range history {
		if err == nil {
			err = st.AppendReply(ctx, run.ID, t.N, t.Reply)
		}
		for _, s := range t.Steps {
			if err == nil {
				err = st.AppendStep(ctx, run.ID, t.N, s)
			}
		}
	}
	if err != nil {
		st.Close()
		return nil, nil, att, &exitError{code: exitRuntime, err: err}
	}
	run.Turns = history
	return st, run, att, nil
}

// live reports whether the daemon c holds session id.
func live(ctx context.Context, c *server.Client, id string) bool {
	all, err := c.Sessions(ctx)
	if err != nil {
		return false
	}
	for _, s := range all {
		if s.ID == id {
			return true
		}
	}
	return false
}

func withoutRun(runs []runstore.Run, id string) []runstore.Run {
	out := runs[:0:0]
	for _, r := range runs {
		if r.ID != id {
			out = append(out, r)
		}
	}
	return out
}

func closeStore(st *runstore.Store) {
	if st != nil {
		st.Close()
	}
}

// openRun opens the workspace's run store and the run to carry out: the
// stored run resume names (made running), or a new one for args[0]. A new
// run goes on without a store that cannot be opened (with a warning);
// a resume cannot.
func (a *app) openRun(ctx context.Context, resume string, args []string, backend, sessionID string) (*runstore.Store, *runstore.Run, error) {
	st, err := runstore.Open(ctx, a.cfg.StateDir)
	if resume != "" {
		if err != nil {
			return nil, nil, &exitError{code: exitRuntime, err: err}
		}
		run, err := st.Resume(ctx, resume)
		if err != nil {
			st.Close()
			if errors.Is(err, runstore.ErrNotFound) || errors.Is(err, runstore.ErrNotResumable) {
				return nil, nil, &exitError{code: 1, err: err}
			}
			return nil, nil, &exitError{code: exitRuntime, err: err}
		}
		return st, run, nil
	}
	if sessionID == "" {
		sessionID = session.NewID()
	}
	run := &runstore.Run{ID: runstore.NewID(), Task: args[0], Backend: backend, Session: sessionID, Status: runstore.Running, Started: time.Now().UTC()}
	if err == nil {
		if err = st.Create(ctx, *run); err != nil {
			st.Close()
		}
	}
	if err != nil {
		a.log().Warn("this run is not recorded (it cannot be resumed)", "error", err)
		return nil, run, nil
	}
	return st, run, nil
}

// runDurable carries out run id through exec, recording its replies, steps
// and final status in st (when not nil) as they happen.
func (a *app) runDurable(ctx context.Context, st *runstore.Store, id string, req agentRequest, exec func(agentRequest) (*agent.Result, error)) (*agent.Result, error) {
	if st == nil {
		return exec(req)
	}
	req.onReply = func(ctx context.Context, n int, reply string) error {
		return st.AppendReply(context.WithoutCancel(ctx), id, n, reply)
	}
	req.onStep = func(ctx context.Context, n int, step *agent.Step) error {
		return st.AppendStep(context.WithoutCancel(ctx), id, n, step)
	}
	res, err := exec(req)
	u := runstore.Update{Status: runstore.Done}
	switch {
	case ctx.Err() != nil:
		u.Status, u.Error = runstore.Interrupted, "interrupted by a signal"
	case err != nil:
		u.Status, u.Error = runstore.Failed, err.Error()
	case !res.Success:
		u.Status, u.Error = runstore.Failed, res.Error
	}
	if res != nil {
		b, merr := json.Marshal(res)
		if merr != nil {
			return res, fmt.Errorf("recording run %s: %w", id, merr)
		}
		u.Result = b
	}
	if serr := st.SetStatus(context.WithoutCancel(ctx), id, u); serr != nil {
		a.log().Error("run status not recorded", "run", id, "status", u.Status, "error", serr)
	}
	return res, err
}

// agentRequest is one agent run, from the CLI or the HTTP API.
type agentRequest struct {
	task, backend, session string
	maxSteps               int
	// history, onReply and onStep make the run durable (agent.Options).
	history []agent.Turn
	onReply func(ctx context.Context, turn int, reply string) error
	onStep  func(ctx context.Context, turn int, step *agent.Step) error
	// sandbox, when set, is where the code runs (a daemon session), else
	// session of the manager; prior is the conversation before the task.
	sandbox agent.Sandbox
	prior   []llm.Message
	onEvent func(agent.Event)
	// input is loaded into the session as `context` (run --context).
	input *agent.Input
}

// runAgent runs the agent loop with runtime.hcl's limits, skill listing,
// auto-save and ask_llm budget, and labels the run's replay steps with its
// task.
func (a *app) runAgent(ctx context.Context, m *session.Manager, rec *replay.Recorder, model *llm.Client, req agentRequest) (*agent.Result, error) {
	cfg := a.cfg
	reg := &skills.Registry{Dir: cfg.Skills.Dir}
	if req.backend == "" {
		req.backend = cfg.Backend
	}
	if req.session == "" {
		req.session = session.NewID()
	}
	sb := req.sandbox
	if sb == nil {
		s, err := m.Open(ctx, session.Options{ID: req.session, Backend: req.backend})
		if err != nil {
			return nil, err
		}
		sb = agent.ManagerSandbox(m, s)
		rec.SetTask(s.ID, req.task)
		// ask_llm from this run's code goes through this process's bridge:
		// the run's budget is kept there.
		if br := m.Bridge(); br != nil {
			br.SetBudget(s.ID, bridge.Budget{Calls: cfg.Agent.AskLLMCalls, Tokens: cfg.Agent.AskLLMTokens})
			defer br.ClearBudget(s.ID)
		}
	} else {
		if d, ok := sb.(daemonSandbox); ok {
			d.task = req.task
			sb = d
		}
		a.log().Debug("the run's ask_llm budget is not enforced: its session's calls go through the daemon", "session", sb.ID())
	}
	opts := agent.Options{
		Backend: sb.Backend(), SessionID: sb.ID(), MaxSteps: cfg.Agent.MaxSteps, StepTimeout: cfg.Agent.StepTimeout,
		Budget: cfg.Agent.Budget, ObservationLimit: int(cfg.Agent.ObservationLimit), Listing: a.listing(a.hub(), req.task),
		Environment: a.environment(ctx, m, sb.Backend(), req.sandbox == nil), Logger: a.log(),
		Prior: req.prior, History: req.history, OnReply: req.onReply, OnStep: req.onStep, OnEvent: req.onEvent,
		Input: req.input, Inputs: &a.inputs, MaxDepth: cfg.Agent.MaxDepth,
		Vision: cfg.LLM.Vision, OutputsDir: runOutputsDir(cfg, sb.ID()),
	}
	if req.maxSteps > 0 {
		opts.MaxSteps = req.maxSteps
	}
	if cfg.Skills.AutoSave {
		opts.AfterStep = func(ctx context.Context, sb agent.Sandbox, st *agent.Step) {
			a.considerSkill(ctx, m, reg, sb, st)
		}
	}
	return agent.RunIn(ctx, sb, model, req.task, opts)
}

// considerSkill offers a successful step to the skill registry and notes
// on the step what became of it (visible in the run's result and events).
func (a *app) considerSkill(ctx context.Context, m *session.Manager, reg *skills.Registry, sb agent.Sandbox, st *agent.Step) {
	if st.Result == nil || !st.Result.OK() {
		return
	}
	sk, why, err := reg.Consider(ctx, m, skills.Candidate{Code: st.Code, Stdout: st.Stdout, Task: st.Task, Session: sb.ID(), Step: st.N, Backend: sb.Backend()})
	switch {
	case err != nil:
		a.log().Warn("skill extraction failed", "step", st.N, "error", err)
		st.Skill = "not saved as a skill: " + err.Error()
	case sk != nil:
		a.log().Info("saved skill", "name", sk.Name, "version", sk.Version, "signature", sk.Signature)
		st.Skill = fmt.Sprintf("saved as skill %s (version %d)", sk.Name, sk.Version)
	case strings.HasPrefix(why, "not self-contained"):
		a.log().Info("step not saved as a skill", "step", st.N, "reason", why)
		st.Skill = "not saved as a skill: " + why
	default:
		a.log().Debug("step not saved as a skill", "step", st.N, "reason", why)
		if why != "defines no function" && why != "no meaningful output" {
			st.Skill = "not saved as a skill: " + why
		}
	}
}

// agentRunner serves the HTTP API's asynchronous runs, kept in the state
// dir's run store; nil without a model, or (logged) when the store cannot
// be opened.
func (a *app) agentRunner(m *session.Manager, rec *replay.Recorder) *server.Runner {
	model := llmClient(a.cfg, a.log())
	if model == nil {
		return nil
	}
	st, err := runstore.Open(context.Background(), a.cfg.StateDir)
	if err != nil {
		a.log().Error("agent runs are disabled", "error", err)
		return nil
	}
	return &server.Runner{Store: st, Run: func(ctx context.Context, spec server.RunSpec) (any, error) {
		req := agentRequest{task: spec.Task, backend: spec.Backend, session: spec.Session,
			history: spec.History, onReply: spec.OnReply, onStep: spec.OnStep, input: spec.Input}
		if len(spec.History) == 0 {
			// A new run in a session with earlier runs continues their
			// conversation, as `run --session` does.
			runs, err := sessionRuns(ctx, st, a.cfg.Workspace, spec.Session, 0, 0)
			if err != nil {
				a.log().Warn("the session's earlier runs are not restored", "session", spec.Session, "error", err)
			}
			req.prior = transcript(withoutRun(runs, spec.ID), int(a.cfg.Agent.ObservationLimit))
		}
		res, err := a.runAgent(ctx, m, rec, model, req)
		if err == nil && !res.Success {
			// A run that ended without an answer failed; it can be resumed.
			err = errors.New(res.Error)
		}
		return res, err
	}}
}

func skillsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "skills", Short: "List, show and remove saved skills"}
	var asJSON bool
	reg := func() (*skills.Registry, error) {
		cfg, err := a.load()
		if err != nil {
			return nil, err
		}
		return &skills.Registry{Dir: cfg.Skills.Dir}, nil
	}
	list := &cobra.Command{
		Use: "list", Short: "List skills with their signatures", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := reg()
			if err != nil {
				return err
			}
			all, err := r.List()
			if err != nil {
				return err
			}
			if asJSON {
				if all == nil {
					all = []skills.Skill{}
				}
				printJSON(cmd.OutOrStdout(), all)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			for _, s := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Signature, s.Description)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use: "show NAME", Short: "Print a skill's module", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := reg()
			if err != nil {
				return err
			}
			_, src, err := r.Get(args[0])
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprint(cmd.OutOrStdout(), src)
			return nil
		},
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "Remove a skill", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := reg()
			if err != nil {
				return err
			}
			if err := r.Remove(args[0]); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, rm)
	return cmd
}

// runOutputsDir is where a run's rich outputs (plots, tables) are saved:
// in the state directory, out of the sandbox's reach and of the replay
// store's snapshots.
func runOutputsDir(cfg *config.Config, sessionID string) string {
	return filepath.Join(cfg.StateDir, "outputs", sessionID)
}
