package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

type execFlags struct {
	code    string
	session string
	backend string
	timeout time.Duration
	json    bool
	outputs string
}

func execCmd(a *app) *cobra.Command {
	f := &execFlags{}
	cmd := &cobra.Command{
		Use:   "exec [FILE | -]",
		Short: "Run Python code in a sandbox",
		Long: `Run Python code in a sandbox and pass its output and exit status through.

The code comes from -c, from FILE, or from standard input ("-", or when
nothing else is given and stdin is not a terminal). Output streams live.
Like in a notebook, the value of a final expression is shown. Rich outputs
(plots, display(), a DataFrame's HTML) are printed as their text, and with
--outputs DIR saved as files; --json carries them as mime bundles.

With --session ID the code runs in a persistent session kept by the
workspace's daemon (started on demand, exits after runtime.daemon_idle_timeout):
variables survive between invocations.

Exit status: the code's own (sys.exit(n) gives n, an uncaught exception 1, a
timeout 124, a killed kernel 128+signal); 125 when mcpruntime itself failed;
2 for usage and configuration errors.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runExec(cmd, a, f, args) },
	}
	cmd.Flags().StringVarP(&f.code, "code", "c", "", "code to run")
	cmd.Flags().StringVar(&f.session, "session", "", "run in this persistent session (created on first use)")
	cmd.Flags().StringVar(&f.backend, "backend", "", "sandbox backend (default: runtime.hcl's runtime.backend)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "wall-clock limit for this execution (default: the backend's limits.timeout)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON object {stdout, stderr, outputs, exit_code, error, duration_ms, session, ...}")
	cmd.Flags().StringVar(&f.outputs, "outputs", "", "write rich outputs (plots, HTML tables) into this directory as files and print their paths")
	return cmd
}

func readCode(cmd *cobra.Command, f *execFlags, args []string) (string, error) {
	switch {
	case f.code != "" && len(args) > 0:
		return "", errors.New("give the code either with -c or as a file, not both")
	case f.code != "":
		return f.code, nil
	case len(args) == 1 && args[0] != "-":
		b, err := os.ReadFile(args[0])
		if err != nil {
			return "", fmt.Errorf("read code: %w", err)
		}
		return string(b), nil
	}
	in := cmd.InOrStdin()
	if file, ok := in.(*os.File); ok && len(args) == 0 {
		if st, err := file.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", errors.New("no code given: use -c CODE, a file, or pipe code into standard input")
		}
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return "", fmt.Errorf("read code from stdin: %w", err)
	}
	return string(b), nil
}

// execOutput is the --json shape.
type execOutput struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Outputs are the rich outputs (mime bundles, binary types base64),
	// in order; OutputFiles the files --outputs wrote.
	Outputs         []*sdk.Display `json:"outputs,omitempty"`
	OutputFiles     []string       `json:"output_files,omitempty"`
	ExitCode        int            `json:"exit_code"`
	Error           *string        `json:"error"`
	ErrorKind       sdk.ErrorKind  `json:"error_kind,omitempty"`
	Exception       *sdk.Exception `json:"exception,omitempty"`
	DurationMs      float64        `json:"duration_ms"`
	Session         string         `json:"session"`
	Backend         string         `json:"backend"`
	OutputTruncated bool           `json:"output_truncated"`
	StateLost       bool           `json:"state_lost"`
	// Limits are what the execution ran under (--timeout clamped to
	// limits.timeout).
	Limits *sdk.AppliedLimits `json:"limits,omitempty"`
	// ReplayError says what of the execution was not recorded.
	ReplayError string `json:"replay_error,omitempty"`
	// Note is what the runtime says about a successful execution: a
	// session woken from hibernation and what it could not carry, a
	// session re-created after its process died.
	Note string `json:"note,omitempty"`
}

func runExec(cmd *cobra.Command, a *app, f *execFlags, args []string) error {
	code, err := readCode(cmd, f, args)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	cfg, err := a.load()
	if err != nil {
		return err
	}
	backend := f.backend
	if backend == "" {
		backend = cfg.Backend
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	out := &execOutput{Session: f.session, Backend: backend}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var files *outputFiles
	if f.outputs != "" {
		files = &outputFiles{dir: f.outputs}
	}
	emit := func(e sdk.Event) {
		switch e.Kind {
		case sdk.EventDisplay:
			var paths []string
			if files != nil {
				var err error
				if paths, err = files.write(e.Display); err != nil {
					fmt.Fprintln(stderr, "mcpruntime:", err)
				}
			}
			if f.json {
				out.Outputs = append(out.Outputs, e.Display)
				out.OutputFiles = append(out.OutputFiles, paths...)
			} else {
				printDisplay(stdout, e.Display, paths)
			}
		case sdk.EventStdout:
			if f.json {
				out.Stdout += string(e.Data)
			} else {
				stdout.Write(e.Data)
			}
		case sdk.EventStderr:
			if f.json {
				out.Stderr += string(e.Data)
			} else {
				stderr.Write(e.Data)
			}
		}
	}

	var res *sdk.ExecResult
	if f.session != "" {
		res, err = execInDaemon(ctx, a, f, code, emit)
	} else {
		res, out.Session, err = execOnce(ctx, a, backend, code, f.timeout, emit)
	}
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: 130, err: errors.New("interrupted")}
		}
		if f.json {
			msg := err.Error()
			out.Error, out.ExitCode = &msg, exitRuntime
			printJSON(stdout, out)
			return &exitError{code: exitRuntime}
		}
		return &exitError{code: exitRuntime, err: err}
	}
	out.ExitCode, out.ErrorKind, out.Exception = res.ExitCode, res.Error, res.Exception
	out.DurationMs = float64(res.Duration.Microseconds()) / 1000
	out.OutputTruncated, out.StateLost, out.Limits = res.OutputTruncated, res.StateLost, res.Limits
	out.ReplayError = res.ReplayError
	if res.Error != sdk.ErrorNone {
		msg := res.Message
		out.Error = &msg
	} else {
		out.Note = res.Message
	}
	if f.json {
		printJSON(stdout, out)
	} else {
		reportResult(stderr, res, f.session)
	}
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	if res.Error != sdk.ErrorNone {
		return &exitError{code: 1}
	}
	return nil
}

// reportResult tells a human what the output alone does not: timeouts,
// dead kernels, truncation, lost state.
func reportResult(w io.Writer, res *sdk.ExecResult, sessionID string) {
	if l := res.Limits; l != nil && l.Clamped {
		fmt.Fprintf(w, "mcpruntime: --timeout %s is above limits.timeout; %s applied\n",
			time.Duration(l.RequestedTimeoutMs)*time.Millisecond, time.Duration(l.TimeoutMs)*time.Millisecond)
	}
	switch res.Error {
	case sdk.ErrorTimeout, sdk.ErrorKernelDied, sdk.ErrorSessionLost, sdk.ErrorInternal:
		fmt.Fprintln(w, "mcpruntime:", res.Message)
	case sdk.ErrorMemory:
		fmt.Fprintln(w, "mcpruntime: out of memory:", res.Message)
	}
	if res.OutputTruncated {
		fmt.Fprintln(w, "mcpruntime: output truncated (limit reached; raise limits.output in runtime.hcl)")
	}
	lost := res.StateLost && sessionID != "" && res.Error != sdk.ErrorKernelDied && res.Error != sdk.ErrorTimeout
	switch {
	case lost && res.Error == sdk.ErrorNone && res.Message != "":
		fmt.Fprintf(w, "mcpruntime: session %s was restarted before this execution; earlier variables are gone (%s)\n", sessionID, res.Message)
	case lost:
		fmt.Fprintf(w, "mcpruntime: session %s was restarted before this execution; earlier variables are gone\n", sessionID)
	case res.Error == sdk.ErrorNone && res.Message != "":
		fmt.Fprintln(w, "mcpruntime: note:", res.Message)
	}
	if res.ReplayError != "" {
		fmt.Fprintln(w, "mcpruntime: replay:", res.ReplayError)
	}
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// execOnce runs code in a throw-away session of an in-process plugin host.
func execOnce(ctx context.Context, a *app, backend, code string, timeout time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, string, error) {
	m, err := a.oneShotManager()
	if err != nil {
		return nil, "", err
	}
	defer m.Shutdown(context.WithoutCancel(ctx))
	defer recordReplay(a, m).Wait() // runs before Shutdown: the step's state gets saved
	if strings.Contains(code, "tools") {
		// The code may import tool stubs: a server started for the first
		// time lists its tools before the code runs (bounded by its
		// init_timeout), so the stubs are typed.
		a.hub().AwaitListings(ctx)
	}
	s, err := m.Open(ctx, session.Options{Backend: backend})
	if err != nil {
		return nil, "", err
	}
	res, err := m.Exec(ctx, s, code, timeout, emit)
	return res, s.ID, err
}

// execInDaemon runs code in a persistent session of the workspace daemon.
func execInDaemon(ctx context.Context, a *app, f *execFlags, code string, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	cfg, err := a.load()
	if err != nil {
		return nil, err
	}
	if err := session.ValidateID(f.session); err != nil {
		return nil, err
	}
	c, h, err := daemon.Ensure(ctx, cfg, a.daemonArgs())
	if err != nil {
		return nil, err
	}
	if h.ConfigDigest != daemon.Digest(cfg) {
		fmt.Fprintln(os.Stderr, "mcpruntime: warning: the session daemon runs an older runtime.hcl; `mcpruntime daemon stop` applies the new one (live sessions end)")
	}
	req := server.ExecRequest{Code: code, Backend: f.backend, TimeoutMs: f.timeout.Milliseconds(), Create: true}
	res, err := c.Exec(ctx, f.session, req, emit)
	if err != nil && daemon.Unreachable(err) {
		// The daemon stopped between answering and this request (a
		// concurrent `daemon stop` or idle exit); nothing ran. Start the
		// next one and send the request there.
		if c, _, err = daemon.Ensure(ctx, cfg, a.daemonArgs()); err != nil {
			return nil, err
		}
		return c.Exec(ctx, f.session, req, emit)
	}
	return res, err
}
