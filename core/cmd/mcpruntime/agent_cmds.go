package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
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

func runCmd(a *app) *cobra.Command {
	var backend, sessionID, resume string
	var asJSON bool
	var maxSteps int
	cmd := &cobra.Command{
		Use:   "run TASK | run --resume ID",
		Short: "Let the language model solve TASK by writing Python that runs in the sandbox",
		Long: `Run the agent loop: the model (llm block of runtime.hcl, or OPENAI_BASE_URL /
OPENAI_API_KEY / MCPRUNTIME_MODEL) writes Python; every python block of a
reply runs in one sandbox session and its output is the next message; a reply
without code ends the run and is printed as the answer. Working functions are
saved as skills (skills.auto_save).

Every run is kept in the state dir with its steps as they happen, like the
runs of the HTTP API (POST /v1/runs). --resume ID continues an interrupted,
failed or cancelled run from its last completed step, in its session: the
model sees the conversation so far, and the completed steps count against
agent.max_steps.

Exit status 0 when the run produced an answer, 1 when it failed or hit a
limit (agent.max_steps, agent.budget), 125 when the runtime failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (resume == "") == (len(args) == 0) {
				return &exitError{code: exitUsage, err: errors.New("run takes a TASK, or --resume ID")}
			}
			if resume != "" && (backend != "" || sessionID != "") {
				return &exitError{code: exitUsage, err: errors.New("--resume continues a run in its own backend and session")}
			}
			cfg, err := a.load()
			if err != nil {
				return err
			}
			model := llmClient(cfg, a.log())
			if model == nil {
				return &exitError{code: exitUsage, err: llm.ErrNotConfigured}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			st, run, err := a.openRun(ctx, resume, args, backend, sessionID)
			if err != nil {
				return err
			}
			if st != nil {
				defer st.Close()
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			defer m.Shutdown(context.WithoutCancel(ctx))
			rec := recordReplay(a, m)
			defer rec.Wait()
			req := agentRequest{task: run.Task, backend: run.Backend, session: run.Session, maxSteps: maxSteps, history: run.Turns}
			res, err := a.runDurable(ctx, st, run.ID, req, func(req agentRequest) (*agent.Result, error) {
				return a.runAgent(ctx, m, rec, model, req)
			})
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), res)
			} else if res.Success {
				fmt.Fprintln(cmd.OutOrStdout(), res.Answer)
			}
			if !res.Success {
				if st != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "mcpruntime: run %s stopped; `mcpruntime run --resume %s` continues it\n", run.ID, run.ID)
				}
				if asJSON {
					return &exitError{code: 1}
				}
				return &exitError{code: 1, err: errors.New("run failed: " + res.Error)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&backend, "backend", "", "sandbox backend (default runtime.backend)")
	cmd.Flags().StringVar(&sessionID, "session", "", "session id (default: a new one)")
	cmd.Flags().StringVar(&resume, "resume", "", "continue the stored run `ID` from its last completed step")
	cmd.Flags().IntVar(&maxSteps, "max-steps", 0, "override agent.max_steps")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
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
}

// runAgent runs the agent loop with runtime.hcl's limits, skill listing and
// auto-save, and labels the run's replay steps with its task.
func (a *app) runAgent(ctx context.Context, m *session.Manager, rec *replay.Recorder, model *llm.Client, req agentRequest) (*agent.Result, error) {
	cfg := a.cfg
	reg := &skills.Registry{Dir: cfg.Skills.Dir}
	if req.backend == "" {
		req.backend = cfg.Backend
	}
	if req.session == "" {
		req.session = session.NewID()
	}
	rec.SetTask(req.session, req.task)
	opts := agent.Options{
		Backend: req.backend, SessionID: req.session, MaxSteps: cfg.Agent.MaxSteps, StepTimeout: cfg.Agent.StepTimeout,
		Budget: cfg.Agent.Budget, ObservationLimit: int(cfg.Agent.ObservationLimit), Listing: joinListings(reg.Prompt(), a.hub().Listing()), Logger: a.log(),
		History: req.history, OnReply: req.onReply, OnStep: req.onStep,
	}
	if req.maxSteps > 0 {
		opts.MaxSteps = req.maxSteps
	}
	if cfg.Skills.AutoSave {
		opts.AfterStep = func(ctx context.Context, s *session.Session, st *agent.Step) {
			if st.Result == nil || !st.Result.OK() {
				return
			}
			sk, why, err := reg.Consider(ctx, m, skills.Candidate{Code: st.Code, Stdout: st.Stdout, Task: st.Task, Session: s.ID, Step: st.N, Backend: s.Backend})
			switch {
			case err != nil:
				a.log().Warn("skill extraction failed", "step", st.N, "error", err)
			case sk != nil:
				a.log().Info("saved skill", "name", sk.Name, "signature", sk.Signature)
			default:
				a.log().Debug("step not saved as a skill", "step", st.N, "reason", why)
			}
		}
	}
	return agent.Run(ctx, m, model, req.task, opts)
}

// joinListings joins the non-empty prompt sections (skills, tools).
func joinListings(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
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
		res, err := a.runAgent(ctx, m, rec, model, agentRequest{task: spec.Task, backend: spec.Backend, session: spec.Session,
			history: spec.History, onReply: spec.OnReply, onStep: spec.OnStep})
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
