package mcpserve

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// register adds the tools. Annotations tell clients what a call may do:
// execute_python changes sessions and the workspace but reaches nothing
// outside the sandbox (open-world false: sandboxes have no network);
// list_* only read; close_session destroys a session's state.
func (s *Server) register() {
	s.mcp.AddTool(mcp.NewTool("execute_python",
		mcp.WithDescription("Run Python code in a sandbox and return its stdout, stderr, exit code and error. "+
			"Like a notebook cell, the value of a final expression is printed. Output beyond the server's limit "+
			"keeps its head and tail with the elided middle marked. With a progressToken, output arrives live "+
			"as progress notifications."),
		mcp.WithString("code", mcp.Required(), mcp.Description("the Python source to run")),
		mcp.WithString("session_id", mcp.Description("run in this persistent session (created on first use); omit for a one-off session")),
		mcp.WithString("backend", mcp.Description("sandbox backend for a new session (default: runtime.hcl's runtime.backend)")),
		mcp.WithInteger("timeout_ms", mcp.Description("wall-clock limit in milliseconds; at most, and by default, the backend's limits.timeout"), mcp.Min(1)),
		mcp.WithOutputSchema[execOutput](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: "Run Python",
			ReadOnlyHint: mcp.ToBoolPtr(false), DestructiveHint: mcp.ToBoolPtr(false),
			IdempotentHint: mcp.ToBoolPtr(false), OpenWorldHint: mcp.ToBoolPtr(false)}),
	), s.executePython)
	s.mcp.AddTool(mcp.NewTool("list_sessions",
		mcp.WithDescription("List the live sandbox sessions: id, backend, state, executions run, creation time."),
		mcp.WithOutputSchema[sessionList](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: "List sessions",
			ReadOnlyHint: mcp.ToBoolPtr(true), DestructiveHint: mcp.ToBoolPtr(false),
			IdempotentHint: mcp.ToBoolPtr(true), OpenWorldHint: mcp.ToBoolPtr(false)}),
	), s.listSessions)
	s.mcp.AddTool(mcp.NewTool("close_session",
		mcp.WithDescription("Close a persistent session, cancelling code running in it; its variables are discarded (workspace files stay)."),
		mcp.WithString("session_id", mcp.Required(), mcp.Description("the session to close")),
		mcp.WithOutputSchema[closeOutput](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: "Close a session",
			ReadOnlyHint: mcp.ToBoolPtr(false), DestructiveHint: mcp.ToBoolPtr(true),
			IdempotentHint: mcp.ToBoolPtr(false), OpenWorldHint: mcp.ToBoolPtr(false)}),
	), s.closeSession)
	s.mcp.AddTool(mcp.NewTool("list_skills",
		mcp.WithDescription("List the saved skills that sandbox code can import (from skills.<name> import run), with signatures and descriptions."),
		mcp.WithOutputSchema[skillList](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: "List skills",
			ReadOnlyHint: mcp.ToBoolPtr(true), DestructiveHint: mcp.ToBoolPtr(false),
			IdempotentHint: mcp.ToBoolPtr(true), OpenWorldHint: mcp.ToBoolPtr(false)}),
	), s.listSkills)
}

// sessionInfo is one entry of list_sessions.
type sessionInfo struct {
	ID      string    `json:"id" jsonschema:"the session id (execute_python's session_id)"`
	Backend string    `json:"backend" jsonschema:"the sandbox backend"`
	State   string    `json:"state" jsonschema:"live, pending_recovery, hibernated or lost"`
	Execs   int       `json:"execs" jsonschema:"executions run in the session"`
	Created time.Time `json:"created" jsonschema:"when the session was created"`
}

// sessionList is list_sessions' structured result.
type sessionList struct {
	Sessions []sessionInfo `json:"sessions"`
}

// listSessions never waits: Manager.List and Session.State do not wait
// for code running in a session, and it takes no cell slot.
func (s *Server) listSessions(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	out := sessionList{Sessions: []sessionInfo{}}
	var b strings.Builder
	for _, sess := range s.opts.Manager.List() {
		info := sessionInfo{ID: sess.ID, Backend: sess.Backend, State: sess.State(), Execs: sess.Execs(), Created: sess.Created}
		out.Sessions = append(out.Sessions, info)
		fmt.Fprintf(&b, "%s  backend=%s  state=%s  execs=%d  created=%s\n", info.ID, info.Backend, info.State, info.Execs, info.Created.Format(time.RFC3339))
	}
	if len(out.Sessions) == 0 {
		b.WriteString("no live sessions\n")
	}
	return mcp.NewToolResultStructured(out, b.String()), nil
}

// closeOutput is close_session's structured result.
type closeOutput struct {
	Closed string `json:"closed" jsonschema:"the session closed"`
}

func (s *Server) closeSession(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	id, err := req.RequireString("session_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	if err := s.opts.Manager.Close(ctx, id); err != nil {
		return mcp.NewToolResultErrorf("close session: %v", err), nil
	}
	return mcp.NewToolResultStructured(closeOutput{Closed: id}, "closed session "+id), nil
}

// skillList is list_skills' structured result.
type skillList struct {
	Skills []string `json:"skills" jsonschema:"one line per skill: name, signature and description"`
}

func (s *Server) listSkills(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	out := skillList{Skills: []string{}}
	if s.opts.Skills == nil {
		return mcp.NewToolResultStructured(out, "no skills directory is configured\n"), nil
	}
	all, err := s.opts.Skills()
	if err != nil {
		return mcp.NewToolResultErrorf("list skills: %v", err), nil
	}
	if len(all) == 0 {
		return mcp.NewToolResultStructured(out, "no skills saved yet\n"), nil
	}
	var b strings.Builder
	b.WriteString("Skills (in sandbox code: from skills.<name> import run):\n")
	for _, line := range all {
		out.Skills = append(out.Skills, line)
		b.WriteString("- " + line + "\n")
	}
	return mcp.NewToolResultStructured(out, b.String()), nil
}
