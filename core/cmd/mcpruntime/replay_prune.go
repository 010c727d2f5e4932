package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/sdk"
)

func replayPruneCmd(a *app) *cobra.Command {
	var (
		olderThan, maxSize string
		dryRun, asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "prune [--older-than D] [--max-size S] [--dry-run]",
		Short: "Remove old sessions from the replay store",
		Long: `Removes whole recorded sessions from <workspace>/.replay: those whose log was
last written longer ago than --older-than (default: replay.keep, 30d), then the
least recently written until the store fits --max-size (default:
replay.max_size, 1GiB). A session goes with its log, its state pickles, the
workspace snapshots no kept session refers to and the stored files no kept
snapshot names; backend snapshots its steps recorded are deleted in their
backends. "0" lifts a limit.

Never removed: sessions live in the workspace's session daemon, sessions
written to in the last hour (they may be live in another process), and store
files younger than 10 minutes (a step being recorded right now). The session
daemon and the servers run the same pass in the background, a minute after
they start and then every 10 minutes.

Prints each removed session and the totals; --dry-run prints what would go and
removes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			opts := replay.PruneOptions{OlderThan: cfg.Replay.Keep, MaxSize: cfg.Replay.MaxSize, DryRun: dryRun}
			if cmd.Flags().Changed("older-than") {
				if opts.OlderThan, err = config.ParseAge(olderThan); err != nil {
					return &exitError{code: exitUsage, err: fmt.Errorf("--older-than: %w", err)}
				}
			}
			if cmd.Flags().Changed("max-size") {
				if opts.MaxSize, err = sdk.ParseSize(maxSize); err != nil {
					return &exitError{code: exitUsage, err: fmt.Errorf("--max-size: %w", err)}
				}
			}
			live, err := daemonSessions(cmd.Context(), cfg)
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			opts.Live = func(id string) bool { return live[id] }
			rep, err := replay.Prune(cmd.Context(), cfg.Workspace, opts)
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			notDeleted := 0
			if !dryRun && len(rep.BackendSnapshots) > 0 {
				notDeleted = a.deleteBackendSnapshots(cmd.Context(), rep.BackendSnapshots)
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), rep)
			} else {
				printPrune(cmd.OutOrStdout(), rep, opts, notDeleted)
			}
			for _, e := range rep.Errors {
				fmt.Fprintln(cmd.ErrOrStderr(), "mcpruntime: warning: replay prune:", e)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&olderThan, "older-than", "", `remove sessions last written longer ago than this ("30d", "2w", "36h"; default replay.keep)`)
	cmd.Flags().StringVar(&maxSize, "max-size", "", `then remove the least recently written until the store fits ("1GiB"; default replay.max_size)`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed, remove nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// daemonSessions are the sessions of the workspace's session daemon, if
// one runs: prune never removes them.
func daemonSessions(ctx context.Context, cfg *config.Config) (map[string]bool, error) {
	live := map[string]bool{}
	c, _, err := daemon.Connect(ctx, cfg)
	if err != nil {
		return live, nil // no daemon: no live sessions
	}
	list, err := c.Sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("the session daemon did not list its sessions (nothing was removed): %w", err)
	}
	for _, s := range list {
		live[s.ID] = true
	}
	return live, nil
}

// deleteBackendSnapshots deletes the backend snapshots of removed steps in
// their backends (most were deleted when their session ended); it returns
// how many could not be deleted.
func (a *app) deleteBackendSnapshots(ctx context.Context, refs []replay.BackendSnapshotRef) int {
	m, err := a.oneShotManager()
	if err != nil {
		return len(refs)
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	failed := 0
	for _, ref := range refs {
		if err := replay.DeleteBackendSnapshot(ctx, m, ref.Backend, ref.ID); err != nil && !errors.Is(err, sdk.ErrNotSupported) {
			a.log().Debug("replay prune: backend snapshot not deleted", "backend", ref.Backend, "snapshot", ref.ID, "error", err)
			failed++
		}
	}
	return failed
}

func printPrune(w io.Writer, rep *replay.PruneReport, opts replay.PruneOptions, notDeleted int) {
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	for _, s := range rep.Sessions {
		why := "store above max_size " + bytesText(opts.MaxSize)
		if s.Reason == "age" {
			why = "older than " + ageText(opts.OlderThan)
		}
		fmt.Fprintf(w, "%s session %s (last written %s, %s): %d steps, %d files, %s\n", verb, s.Session,
			s.LastWrite.Local().Format(time.DateTime), why, s.Steps, s.Files, bytesText(s.Bytes))
	}
	if n := rep.Manifests + rep.Objects + rep.OtherFiles; n > 0 {
		fmt.Fprintf(w, "%s %d unreferenced store files (%d workspace manifests, %d stored files, %d other): %s\n",
			verb, n, rep.Manifests, rep.Objects, rep.OtherFiles, bytesText(rep.SweptBytes))
	}
	if len(rep.BackendSnapshots) > 0 {
		fmt.Fprintf(w, "%s %d backend snapshots of removed steps", verb, len(rep.BackendSnapshots))
		if notDeleted > 0 {
			fmt.Fprintf(w, " (%d could not be deleted: already gone, or their backend is unavailable)", notDeleted)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "total: %s %d sessions, %d files, %s; the store %s %s (was %s); %d sessions kept\n",
		verb, len(rep.Sessions), rep.Files, bytesText(rep.Bytes), map[bool]string{true: "would be", false: "is now"}[rep.DryRun],
		bytesText(rep.After), bytesText(rep.StoreBytes), rep.Kept)
}

// bytesText is n in binary units ("1.5 MiB").
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ageText is d in days when it is whole days.
func ageText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
