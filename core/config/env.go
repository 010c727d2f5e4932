package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"

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
