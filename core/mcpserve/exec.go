package mcpserve

import (
	"context"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// execOutput is execute_python's structured result.
type execOutput struct {
	Stdout          string  `json:"stdout" jsonschema:"standard output (head and tail when over the server's limit)"`
	Stderr          string  `json:"stderr" jsonschema:"standard error (head and tail when over the server's limit)"`
	ExitCode        int     `json:"exit_code" jsonschema:"0 on success, 1 for an uncaught exception, 124 for a timeout, -1 when the runtime failed"`
	Error           string  `json:"error,omitempty" jsonschema:"what went wrong, if anything"`
	ErrorKind       string  `json:"error_kind,omitempty" jsonschema:"exception, timeout, memory, kernel_died, session_lost, internal or runtime"`
	Session         string  `json:"session" jsonschema:"the session the code ran in"`
	Persistent      bool    `json:"persistent" jsonschema:"whether the session outlives the call"`
	DurationMs      float64 `json:"duration_ms" jsonschema:"how long the code ran"`
	OutputTruncated bool    `json:"output_truncated,omitempty" jsonschema:"the backend's output limit cut the output"`
	OutputElided    int64   `json:"output_elided,omitempty" jsonschema:"bytes left out of the middle of stdout and stderr by the server's limit"`
	StateLost       bool    `json:"state_lost,omitempty" jsonschema:"the session was restarted before this execution; earlier variables are gone"`
	ReplayError     string  `json:"replay_error,omitempty" jsonschema:"why the execution was not recorded in the replay log"`
	// Limits are what the execution ran under: a timeout_ms above the
	// configured limit is clamped to it.
	Limits *sdk.AppliedLimits `json:"limits,omitempty" jsonschema:"the limits the execution ran under"`
	// Outputs describe the rich outputs; their content follows the text
	// as image and text content items.
	Outputs []outputRef `json:"outputs,omitempty" jsonschema:"rich outputs (plots, tables, display()) in order; each is also a content item of the result"`
}

// outputRef describes one rich output in the structured result.
type outputRef struct {
	MIMETypes []string `json:"mime_types" jsonschema:"the representations it has, richest first"`
	Text      string   `json:"text,omitempty" jsonschema:"its text/plain representation"`
}

func (s *Server) executePython(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	code, err := req.RequireString("code")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	// Only cells take a slot: management calls never wait behind them.
	select {
	case s.cells <- struct{}{}:
		defer func() { <-s.cells }()
	case <-ctx.Done():
		return mcp.NewToolResultErrorf("cancelled while waiting for one of the %d execution slots", cap(s.cells)), nil
	}
	id := req.GetString("session_id", "")
	timeout := session.Millis(int64(req.GetInt("timeout_ms", 0)))
	m := s.opts.Manager
	sess, err := m.Open(ctx, session.Options{ID: id, Backend: req.GetString("backend", "")})
	if err != nil {
		return mcp.NewToolResultErrorf("open session: %v", err), nil
	}
	if id == "" {
		defer func() {
			if err := m.Close(context.WithoutCancel(ctx), sess.ID); err != nil {
				s.logger.Warn("close one-off session", "session", sess.ID, "error", err)
			}
		}()
	}
	if s.sampling != nil {
		defer s.sampling.running(ctx)()
	}
	stdout, stderr := newCapBuffer(s.opts.OutputLimit), newCapBuffer(s.opts.OutputLimit)
	var displays []*sdk.Display
	prog := s.startProgress(ctx, req)
	defer prog.stop()
	res, err := m.Exec(ctx, sess, code, timeout, func(e sdk.Event) {
		switch e.Kind {
		case sdk.EventStdout:
			stdout.Write(e.Data)
			prog.add(e.Data)
		case sdk.EventStderr:
			stderr.Write(e.Data)
			prog.add(e.Data)
		case sdk.EventDisplay:
			displays = append(displays, e.Display)
		}
	})
	prog.stop()
	out := execOutput{Stdout: stdout.String(), Stderr: stderr.String(), Session: sess.ID, Persistent: id != "",
		OutputElided: stdout.Elided() + stderr.Elided()}
	if err != nil {
		out.ExitCode, out.Error, out.ErrorKind = -1, err.Error(), "runtime"
	} else {
		out.ExitCode, out.DurationMs = res.ExitCode, float64(res.Duration.Microseconds())/1000
		out.OutputTruncated, out.StateLost, out.Limits = res.OutputTruncated, res.StateLost, res.Limits
		out.ReplayError = res.ReplayError
		if res.Error != sdk.ErrorNone {
			out.Error, out.ErrorKind = res.Message, string(res.Error)
		}
	}
	s.logger.Debug("execute_python", "session", sess.ID, "exit_code", out.ExitCode, "error", out.Error, "elided", out.OutputElided)
	for _, d := range displays {
		out.Outputs = append(out.Outputs, outputRef{MIMETypes: d.MIMETypes(), Text: d.Text()})
	}
	result := mcp.NewToolResultStructured(out, out.text())
	for _, d := range displays {
		result.Content = append(result.Content, displayContent(d))
	}
	result.IsError = err != nil || !res.OK()
	return result, nil
}

// text is the result as the model reads it.
func (o execOutput) text() string {
	var b strings.Builder
	section := func(name, body string) {
		if body == "" {
			return
		}
		fmt.Fprintf(&b, "[%s]\n%s", name, body)
		if !strings.HasSuffix(body, "\n") {
			b.WriteString("\n")
		}
	}
	section("stdout", o.Stdout)
	section("stderr", o.Stderr)
	fmt.Fprintf(&b, "[exit_code] %d\n", o.ExitCode)
	if o.Error != "" {
		fmt.Fprintf(&b, "[error] %s\n", o.Error)
	}
	if o.OutputTruncated {
		b.WriteString("[note] output truncated at the backend's output limit\n")
	}
	if o.StateLost {
		b.WriteString("[note] the session was restarted before this execution; earlier variables are gone\n")
	}
	if o.ReplayError != "" {
		fmt.Fprintf(&b, "[note] not recorded in the replay log: %s\n", o.ReplayError)
	}
	for i, ref := range o.Outputs {
		fmt.Fprintf(&b, "[output %d] %s (the next content items, in order)\n", i+1, strings.Join(ref.MIMETypes, ", "))
	}
	if o.Persistent {
		fmt.Fprintf(&b, "[session] %s\n", o.Session)
	}
	return b.String()
}
