package config

import (
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// checkEnv reports the names a block's env and pass_env cannot use. Plugins
// and MCP servers receive only host.AllowedEnv's base set plus what these
// attributes name, so a typo here silently withholds a variable: say so.
func checkEnv(block string, env map[string]string, pass []string, rng hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range append(names, pass...) {
		if !host.ValidEnvName(k) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid environment variable name",
				Detail: fmt.Sprintf("%s: %q cannot name an environment variable (empty, or contains '=' or NUL).", block, k), Subject: rng.Ptr()})
		}
	}
	return diags
}

// envCall is an env("NAME") call in the file whose variable is not set.
type envCall struct {
	name string
	rng  hcl.Range
}

// unsetEnvCalls finds the env() calls in body that name a variable the
// environment does not set. env() gives "" for them, which is what an
// optional setting (a token, the llm endpoint) wants; where a setting then
// turns out empty or invalid, explainUnsetEnv says why.
func unsetEnvCalls(body hcl.Body) []envCall {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []envCall
	_ = hclsyntax.VisitAll(sb, func(n hclsyntax.Node) hcl.Diagnostics {
		call, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok || call.Name != "env" || len(call.Args) != 1 {
			return nil
		}
		v, diags := call.Args[0].Value(evalContext())
		if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.String {
			return nil
		}
		if _, set := os.LookupEnv(v.AsString()); !set {
			out = append(out, envCall{name: v.AsString(), rng: call.Range()})
		}
		return nil
	})
	return out
}

// explainUnsetEnv adds to each error about a value that holds an env()
// call of an unset variable that the variable is unset.
func explainUnsetEnv(diags hcl.Diagnostics, calls []envCall) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError || d.Subject == nil {
			continue
		}
		for _, c := range calls {
			if c.rng.Filename == d.Subject.Filename && d.Subject.ContainsOffset(c.rng.Start.Byte) {
				d.Detail += fmt.Sprintf(" env(%q) gave \"\": %s is not set in the environment; set it, or write the value here.", c.name, c.name)
				break
			}
		}
	}
}
