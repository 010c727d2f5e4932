package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// ReservedMCPServer is the server name the runtime itself uses (for its
// built-in helpers); no mcp_server block may take it.
const ReservedMCPServer = "mcpruntime"

// buildMCP checks and converts the mcp_server blocks, in file order.
func buildMCP(ctx *hcl.EvalContext, blocks []*mcpBlock, diags *hcl.Diagnostics) []MCPServer {
	var out []MCPServer
	first := map[string]hcl.Range{}
	for _, m := range blocks {
		what := fmt.Sprintf("mcp_server %q", m.Name)
		bad := func(summary, detail string, rng hcl.Range) {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: what + ": " + detail, Subject: rng.Ptr()})
		}
		switch prev, dup := first[m.Name]; {
		case strings.TrimSpace(m.Name) == "":
			bad("Empty MCP server name", "give the server a name, as in mcp_server \"files\" { ... }.", m.Range)
		case m.Name == ReservedMCPServer:
			bad("Reserved MCP server name", fmt.Sprintf("the name %q is the runtime's own (its built-in helpers use it); choose another.", ReservedMCPServer), m.Range)
		case dup:
			bad("Duplicate MCP server", fmt.Sprintf("already defined at line %d; each server needs its own name.", prev.Start.Line), m.Range)
		default:
			first[m.Name] = m.Range
		}

		s := MCPServer{Name: m.Name, Command: m.Command, Env: m.Env, PassEnv: m.PassEnv, Headers: m.Headers}
		hasURL := m.URL != nil
		switch {
		case m.Command != nil && hasURL:
			bad("Both command and url", "a server is either a command (stdio) or a url (streamable HTTP), not both.", m.URLRange)
		case m.Command == nil && !hasURL:
			bad("Missing command or url", "set command = [\"program\", \"arg\", ...] for a stdio server or url = \"https://...\" for a streamable-HTTP one.", m.Range)
		case m.Command != nil && (len(m.Command) == 0 || strings.TrimSpace(m.Command[0]) == ""):
			bad("Empty command", "command must name a program, as in [\"node\", \"server.js\"].", m.CommandRange)
		case hasURL:
			s.URL = strings.TrimSpace(*m.URL)
			if err := checkMCPURL(s.URL); err != nil {
				bad("Invalid url", err.Error(), m.URLRange)
			}
		}
		if hasURL && (len(m.Env) > 0 || len(m.PassEnv) > 0) {
			bad("env for a url server", "env and pass_env set a command's environment; a url server has no process here (send values as headers).", m.Range)
		}
		if !hasURL && len(m.Headers) > 0 {
			bad("headers for a command server", "headers go with requests to a url server; a command server gets env instead.", m.Range)
		}
		for _, name := range sortedKeys(m.Headers) {
			if err := checkHeader(name, m.Headers[name]); err != nil {
				bad("Invalid header", err.Error(), m.Range)
			}
		}
		*diags = append(*diags, checkEnv(what, m.Env, m.PassEnv, m.Range)...)
		s.Timeout = duration(ctx, m.Timeout, 0, diags)
		s.InitTimeout = duration(ctx, m.InitTimeout, 0, diags)
		s.ToolTimeouts = toolTimeouts(ctx, m.ToolTimeouts, what, diags)
		out = append(out, s)
	}
	return out
}

// checkMCPURL accepts an absolute http(s) URL with a host.
func checkMCPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http:// or https:// URL (the server's streamable-HTTP endpoint, often ending in /mcp)", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// checkHeader refuses what net/http would refuse or send garbled.
func checkHeader(name, value string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n:()<>@,;\\\"/[]?={}") {
		return fmt.Errorf("%q cannot name an HTTP header", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("the value of header %q contains a line break or NUL", name)
	}
	return nil
}

// toolTimeouts evaluates `tool_timeouts = { tool = "5m", ... }`.
func toolTimeouts(ctx *hcl.EvalContext, expr hcl.Expression, what string, diags *hcl.Diagnostics) map[string]time.Duration {
	if !present(expr) {
		return nil
	}
	v, d := expr.Value(ctx)
	*diags = append(*diags, d...)
	if d.HasErrors() || v.IsNull() {
		return nil
	}
	bad := func(detail string) {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid tool_timeouts",
			Detail: what + ": " + detail, Subject: expr.Range().Ptr()})
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		bad(`write it as a map from tool name to duration, as in { slow_tool = "5m" }.`)
		return nil
	}
	if !v.IsKnown() {
		return nil
	}
	out := map[string]time.Duration{}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		tool := k.AsString()
		if e.IsNull() || !e.IsKnown() || e.Type() != cty.String {
			bad(fmt.Sprintf("the timeout of %q must be a string such as \"30s\" or \"5m\".", tool))
			continue
		}
		dur, err := time.ParseDuration(e.AsString())
		if err != nil || dur <= 0 {
			bad(fmt.Sprintf("the timeout of %q, %q, is not a positive duration; write it like \"30s\" or \"5m\".", tool, e.AsString()))
			continue
		}
		out[tool] = dur
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
