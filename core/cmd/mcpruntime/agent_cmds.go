package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/replay"
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
		Temperature: cfg.LLM.Temperature, MaxTokens: cfg.LLM.MaxTokens, Timeout: cfg.LLM.Timeout, Logger: logger.Named("llm")}
}

func runCmd(a *app) *cobra.Command {
	var backend, sessionID string
	var asJSON bool
	var maxSteps int
	cmd := &cobra.Command{
		Use:   "run TASK",
		Short: "Let the language model solve TASK by writing Python that runs in the sandbox",
		Long: `Run the agent loop: the model (llm block of runtime.hcl, or OPENAI_BASE_URL /
OPENAI_API_KEY / MCPRUNTIME_MODEL) writes Python; every python block of a
reply runs in one sandbox session and its output is the next message; a reply
without code ends the run and is printed as the answer. Working functions are
saved as skills (skills.auto_save).

Exit status 0 when the run produced an answer, 1 when it failed or hit a
limit (agent.max_steps, agent.budget), 125 when the runtime failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			model := llmClient(cfg, a.log())
			if model == nil {
				return &exitError{code: exitUsage, err: llm.ErrNotConfigured}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			defer m.Shutdown(context.WithoutCancel(ctx))
			rec := recordReplay(a, m)
			defer rec.Wait()
			res, err := a.runAgent(ctx, m, rec, model, agentRequest{task: args[0], backend: backend, session: sessionID, maxSteps: maxSteps})
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), res)
			} else if res.Success {
				fmt.Fprintln(cmd.OutOrStdout(), res.Answer)
			}
			if !res.Success {
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
	cmd.Flags().IntVar(&maxSteps, "max-steps", 0, "override agent.max_steps")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

// agentRequest is one agent run, from the CLI or the HTTP API.
type agentRequest struct {
	task, backend, session string
	maxSteps               int
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

// agentRunner serves the HTTP API's asynchronous runs, or nil without a model.
func (a *app) agentRunner(m *session.Manager, rec *replay.Recorder) server.Runner {
	model := llmClient(a.cfg, a.log())
	if model == nil {
		return nil
	}
	return func(ctx context.Context, task, backend, sessionID string) (any, error) {
		return a.runAgent(ctx, m, rec, model, agentRequest{task: task, backend: backend, session: sessionID})
	}
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
