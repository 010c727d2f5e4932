package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// recordReplay logs every execution of m to the workspace's replay log.
// Callers that shut the manager down must Wait on the recorder first, so the
// state of the last step is saved.
func recordReplay(a *app, m *session.Manager) *replay.Recorder {
	return replay.Record(m, a.log())
}

// replayCmd is `mcpruntime replay`.
func replayCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Inspect, resume and fork recorded sessions",
		Long: `Every execution is recorded in <workspace>/.replay/<session>.jsonl (one fsynced
JSON line per step, written whole or not at all), with a content-addressed
snapshot of the workspace files and a pickle of the session's variables after
the step. A step that could not be recorded says so in its result
(replay_error). replay.keep and replay.max_size in runtime.hcl bound the store;
see "replay prune".

` + replay.Semantics,
	}
	cmd.AddCommand(replayListCmd(a), replayShowCmd(a), replayResumeCmd(a, false), replayResumeCmd(a, true), replaySnapshotCmd(a), replayPruneCmd(a))
	return cmd
}

func replayListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List recorded sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			list, err := replay.List(cfg.Workspace)
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				printJSON(out, list)
				return nil
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no recorded sessions in", cfg.Workspace)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SESSION\tSTEPS\tFAILED\tBACKEND\tLAST\tFROM")
			for _, s := range list {
				from := ""
				if s.ResumedFrom != nil {
					kind := "resumed"
					if s.ResumedFrom.Fork {
						kind = "forked"
					}
					from = fmt.Sprintf("%s from %s step %d", kind, s.ResumedFrom.Session, s.ResumedFrom.Step)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", s.Session, s.Steps, s.Failed, s.Backend, s.Last.Local().Format(time.DateTime), from)
			}
			tw.Flush()
			for _, s := range list {
				warnProblems(cmd.ErrOrStderr(), s.Session, s.Problems)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func warnProblems(w io.Writer, id string, problems []replay.Problem) {
	for _, p := range problems {
		fmt.Fprintf(w, "mcpruntime: warning: replay log of %s: %s (skipped)\n", id, p)
	}
}

// stepView is `replay show --json` for one step.
type stepView struct {
	replay.Entry
	StateInfo *replay.StateInfo `json:"state_info,omitempty"`
	Problems  []replay.Problem  `json:"problems,omitempty"`
}

func replayShowCmd(a *app) *cobra.Command {
	var (
		asJSON bool
		step   int
	)
	cmd := &cobra.Command{
		Use:   "show SESSION",
		Short: "Show the recorded steps of a session",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("step") {
				step = -1
			}
			entries, problems, err := replay.Show(cfg.Workspace, args[0], step)
			if err != nil {
				code := exitRuntime
				if errors.Is(err, replay.ErrNoStep) || errors.Is(err, replay.ErrNoSession) || errors.Is(err, session.ErrInvalidID) {
					code = 1
				}
				return &exitError{code: code, err: err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if step >= 0 {
					v := stepView{Entry: entries[0], Problems: problems}
					if entries[0].State != "" {
						v.StateInfo, _ = replay.ReadStateInfo(cfg.Workspace, entries[0].State)
					}
					printJSON(out, v)
				} else {
					printJSON(out, struct {
						Session  string           `json:"session"`
						Steps    []replay.Entry   `json:"steps"`
						Problems []replay.Problem `json:"problems,omitempty"`
					}{args[0], entries, problems})
				}
				return nil
			}
			for _, e := range entries {
				printStep(out, cfg.Workspace, &e)
			}
			warnProblems(cmd.ErrOrStderr(), args[0], problems)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&step, "step", 0, "show only this step")
	return cmd
}

func printStep(w io.Writer, workspace string, e *replay.Entry) {
	if e.Step == 0 && e.ResumedFrom != nil {
		kind := "resumed"
		if e.ResumedFrom.Fork {
			kind = "forked"
		}
		fmt.Fprintf(w, "── step 0  %s  %s from %s step %d\n", e.Time.Local().Format(time.DateTime), kind, e.ResumedFrom.Session, e.ResumedFrom.Step)
		return
	}
	status := "ok"
	if !e.OK {
		status = fmt.Sprintf("failed (exit %d)", e.Exit)
	}
	fmt.Fprintf(w, "── step %d  %s  %s  %.1f ms  %s\n", e.Step, e.Time.Local().Format(time.DateTime), status, e.DurationMs, e.Backend)
	if e.Task != "" {
		fmt.Fprintf(w, "task: %s\n", e.Task)
	}
	section(w, "code", e.Code)
	section(w, "stdout", e.Stdout)
	section(w, "stderr", e.Stderr)
	if e.Error != "" {
		fmt.Fprintf(w, "error: %s\n", e.Error)
	}
	for _, c := range e.HostCalls {
		if c != nil {
			fmt.Fprintf(w, "host call: %s %s\n", c.Method, c.Detail)
		}
	}
	printOutputs(w, workspace, e)
	if e.WorkspaceSnapshot != "" {
		fmt.Fprintf(w, "workspace: %s\n", e.WorkspaceSnapshot[:12])
	}
	names := make([]string, 0, len(e.WorkspaceSkipped))
	for p := range e.WorkspaceSkipped {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		fmt.Fprintf(w, "  not snapshotted: %s: %s\n", p, e.WorkspaceSkipped[p])
	}
	if e.State != "" {
		si, err := replay.ReadStateInfo(workspace, e.State)
		switch {
		case err != nil:
			fmt.Fprintf(w, "state: %s (not saved yet or lost)\n", e.State)
		case si.Error != "":
			fmt.Fprintf(w, "state: %s\n", si.Error)
		default:
			fmt.Fprintf(w, "state: %s (%d variables", e.State, len(si.Saved))
			if len(si.Skipped) > 0 {
				fmt.Fprintf(w, "; not saved: %s", strings.Join(sortedKeys(si.Skipped), ", "))
			}
			fmt.Fprintln(w, ")")
		}
	}
	if e.StateSnapshot != "" {
		fmt.Fprintf(w, "backend snapshot: %s\n", e.StateSnapshot)
	}
	if e.StateSnapshotError != "" {
		fmt.Fprintf(w, "backend snapshot failed: %s\n", e.StateSnapshotError)
	}
	if e.RecordError != "" {
		fmt.Fprintf(w, "recording problem: %s\n", e.RecordError)
	}
}

// printOutputs lists a step's rich outputs with the store files holding them.
func printOutputs(w io.Writer, workspace string, e *replay.Entry) {
	if len(e.Outputs) == 0 {
		return
	}
	objects, err := replay.OutputObjects(workspace, e)
	if err != nil {
		fmt.Fprintf(w, "outputs: %v\n", err)
	}
	for i, o := range e.Outputs {
		fmt.Fprintf(w, "output %d:", i+1)
		if o.Text != "" {
			fmt.Fprintf(w, " %s", strings.SplitN(o.Text, "\n", 2)[0])
		}
		fmt.Fprintln(w)
		for _, mime := range sortedKeys(o.Files) {
			path := objects[o.Files[mime]]
			if rel, err := filepath.Rel(workspace, path); err == nil && path != "" {
				path = rel
			}
			fmt.Fprintf(w, "  %s  %s\n", mime, path)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func section(w io.Writer, name, text string) {
	if text == "" {
		return
	}
	fmt.Fprintf(w, "%s:\n", name)
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// daemonExec runs the runtime's own code in the workspace daemon.
type daemonExec struct{ c *server.Client }

func (x daemonExec) Exec(ctx context.Context, id, backend, code string) (string, *sdk.ExecResult, error) {
	var out strings.Builder
	res, err := x.c.Exec(ctx, id, server.ExecRequest{Code: code, Backend: backend, Create: true}, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	return out.String(), res, err
}

func (x daemonExec) RestoreStep(ctx context.Context, id, backend, fromSession string, step int) (string, string, error) {
	resp, err := x.c.RestoreStep(ctx, server.RestoreRequest{ID: id, Backend: backend, FromSession: fromSession, Step: step})
	if err != nil {
		// An older daemon without the endpoint: restore the pickle.
		return "", "the session daemon could not restore a backend snapshot: " + err.Error(), nil
	}
	return resp.Snapshot, resp.Reason, nil
}

func (x daemonExec) Close(ctx context.Context, id string) error {
	if err := x.c.CloseSession(ctx, id); err != nil && !strings.Contains(err.Error(), sdk.ErrSessionNotFound.Error()) {
		return err
	}
	return nil
}

func replayResumeCmd(a *app, fork bool) *cobra.Command {
	var (
		asJSON bool
		step   int
	)
	use, short := "resume", "Continue a session from a recorded step in a new session"
	if fork {
		use, short = "fork", "Branch a new session off a recorded step, leaving the original live"
	}
	cmd := &cobra.Command{
		Use:   use + " SESSION --step N",
		Short: short,
		Long: short + `.

Prints the new session's id on standard output (what was and was not restored
goes to standard error, or everything as JSON with --json); continue with
"mcpruntime exec --session NEW".

` + replay.Semantics,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("step") {
				return &exitError{code: exitUsage, err: errors.New("--step N is required (see `mcpruntime replay show " + args[0] + "`)")}
			}
			cfg, err := a.load()
			if err != nil {
				return err
			}
			if _, _, err := replay.Show(cfg.Workspace, args[0], step); err != nil {
				return &exitError{code: 1, err: err}
			}
			c, _, err := daemon.Ensure(cmd.Context(), cfg, a.daemonArgs())
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			id, rep, err := replay.ResumeWith(cmd.Context(), daemonExec{c}, cfg.Workspace, args[0], step, fork, cfg.StateDir)
			if err != nil {
				if rep != nil && asJSON {
					printJSON(cmd.OutOrStdout(), rep)
				}
				return &exitError{code: exitRuntime, err: err}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), rep)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			printReport(cmd.ErrOrStderr(), rep)
			return nil
		},
	}
	cmd.Flags().IntVar(&step, "step", 0, "the recorded step to start from")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full report as JSON")
	return cmd
}

func printReport(w io.Writer, r *replay.Report) {
	kind := "resumed"
	if r.From.Fork {
		kind = "forked"
	}
	fmt.Fprintf(w, "mcpruntime: session %s %s from %s step %d on %s\n", r.Session, kind, r.From.Session, r.From.Step, r.Backend)
	switch r.StateSource {
	case replay.StateFromSnapshot:
		fmt.Fprintf(w, "mcpruntime: state: restored from the backend snapshot %s\n", r.StateSnapshot)
	case replay.StateFromPickle:
		fmt.Fprintf(w, "mcpruntime: state: restored from the kernel pickle (no backend snapshot: %s)\n", r.SnapshotFallback)
	default:
		fmt.Fprintf(w, "mcpruntime: state: nothing restored (no backend snapshot: %s)\n", r.SnapshotFallback)
	}
	if r.Files != nil {
		fmt.Fprintf(w, "mcpruntime: workspace restored to step %d (%d files written, %d removed, %d unchanged); it is shared, so every session sees these files. Files before: snapshot %s\n",
			r.From.Step, r.Files.Written, r.Files.Removed, r.Files.Unchanged, short(r.PreviousWorkspace))
		for _, p := range sortedKeys(r.Files.NotRestored) {
			fmt.Fprintf(w, "mcpruntime: file not restored: %s: %s\n", p, r.Files.NotRestored[p])
		}
	}
	if len(r.Restored) > 0 {
		fmt.Fprintf(w, "mcpruntime: variables restored: %s\n", strings.Join(r.Restored, ", "))
	}
	if r.StateError != "" {
		fmt.Fprintf(w, "mcpruntime: variables NOT restored: %s\n", r.StateError)
	}
	for _, n := range sortedKeys(r.NotRestored) {
		fmt.Fprintf(w, "mcpruntime: variable not restored: %s: %s\n", n, r.NotRestored[n])
	}
	if r.OriginalClosed {
		fmt.Fprintf(w, "mcpruntime: the original session %s was ended (use `replay fork` to keep it)\n", r.From.Session)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "mcpruntime:", n)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func replaySnapshotCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshot SESSION",
		Short: "Take a backend snapshot of a live session's latest step now",
		Long: `Asks the session daemon to snapshot live session SESSION on its backend (which
must declare the snapshots capability) as the state after its latest recorded
step; a later "replay resume|fork SESSION --step N" of that step restores it,
with everything pickle cannot carry. A session keeps its newest
replay.keep_snapshots snapshots; all are deleted when the session ends.
Refused with replay.snapshots = "off".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			c, _, err := daemon.Connect(cmd.Context(), cfg)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("session %s is not live: no session daemon for %s", args[0], cfg.Workspace)}
			}
			rec, err := c.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), rec)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), rec.ID)
			fmt.Fprintf(cmd.ErrOrStderr(), "mcpruntime: snapshot of %s step %d on %s: %d bytes, %.1f ms\n", rec.Session, rec.Step, rec.Backend, rec.SizeBytes, rec.DurationMs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the snapshot as JSON")
	return cmd
}
