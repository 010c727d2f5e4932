package mcp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// execOutput is execute_python's structured result.
type execOutput struct {
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	ExitCode        int     `json:"exit_code"`
	Error           string  `json:"error,omitempty"`
	ErrorKind       string  `json:"error_kind,omitempty"`
	Session         string  `json:"session"`
	Persistent      bool    `json:"persistent"`
	DurationMs      float64 `json:"duration_ms"`
	OutputTruncated bool    `json:"output_truncated,omitempty"`
	StateLost       bool    `json:"state_lost,omitempty"`
	ReplayError     string  `json:"replay_error,omitempty"`
	// Limits are what the execution ran under: a timeout_ms above the
	// configured limit is clamped to it.
	Limits *sdk.AppliedLimits `json:"limits,omitempty"`
}

func (t *serverTools) executePython(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	code, err := req.RequireString("code")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	id := req.GetString("session_id", "")
	timeout := session.Millis(int64(req.GetInt("timeout_ms", 0)))
	m := t.opts.Manager
	s, err := m.Open(ctx, session.Options{ID: id, Backend: req.GetString("backend", "")})
	if err != nil {
		return mcp.NewToolResultErrorf("open session: %v", err), nil
	}
	if id == "" {
		defer func() {
			if err := m.Close(context.WithoutCancel(ctx), s.ID); err != nil {
				t.logger.Warn("close one-off session", "session", s.ID, "error", err)
			}
		}()
	}
	var mu sync.Mutex
	var stdout, stderr strings.Builder
	res, err := m.Exec(ctx, s, code, timeout, func(e sdk.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case sdk.EventStdout:
			stdout.Write(e.Data)
		case sdk.EventStderr:
			stderr.Write(e.Data)
		}
	})
	mu.Lock()
	out := execOutput{Stdout: stdout.String(), Stderr: stderr.String(), Session: s.ID, Persistent: id != ""}
	mu.Unlock()
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
	t.logger.Debug("execute_python", "session", s.ID, "exit_code", out.ExitCode, "error", out.Error)
	result := mcp.NewToolResultStructured(out, out.text())
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
	if o.Persistent {
		fmt.Fprintf(&b, "[session] %s\n", o.Session)
	}
	return b.String()
}

// sessionInfo is one entry of list_sessions.
type sessionInfo struct {
	ID      string    `json:"id"`
	Backend string    `json:"backend"`
	Execs   int       `json:"execs"`
	Created time.Time `json:"created"`
}

func (t *serverTools) listSessions(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	list := []sessionInfo{}
	var b strings.Builder
	for _, s := range t.opts.Manager.List() {
		info := sessionInfo{ID: s.ID, Backend: s.Backend, Execs: s.Execs(), Created: s.Created}
		list = append(list, info)
		fmt.Fprintf(&b, "%s  backend=%s  execs=%d  created=%s\n", info.ID, info.Backend, info.Execs, info.Created.Format(time.RFC3339))
	}
	if len(list) == 0 {
		b.WriteString("no live sessions\n")
	}
	return mcp.NewToolResultStructured(map[string]any{"sessions": list}, b.String()), nil
}

func (t *serverTools) closeSession(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	id, err := req.RequireString("session_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if err := t.opts.Manager.Close(ctx, id); err != nil {
		return mcp.NewToolResultErrorf("close session: %v", err), nil
	}
	return mcp.NewToolResultText("closed session " + id), nil
}

func (t *serverTools) listSkills(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if t.opts.Skills == nil {
		return mcp.NewToolResultText("no skills directory is configured\n"), nil
	}
	all, err := t.opts.Skills.List()
	if err != nil {
		return mcp.NewToolResultErrorf("list skills: %v", err), nil
	}
	if len(all) == 0 {
		return mcp.NewToolResultText("no skills saved yet\n"), nil
	}
	var b strings.Builder
	b.WriteString("Skills (in sandbox code: from skills.<name> import run):\n")
	for _, s := range all {
		b.WriteString("- " + s.Listing() + "\n")
	}
	return mcp.NewToolResultText(b.String()), nil
}
