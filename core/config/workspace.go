package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/mcpruntime/mcpruntime/core/internal/confine"
)

// runtimeFilesInWorkspace refuses layouts where the workspace holds files
// the runtime itself reads back. The workspace is the one directory every
// backend mounts read-write for sandbox code; anything in it can be
// rewritten by that code: the state dir (the daemon's socket; the plugins'
// caches, e.g. wazero's compiled code, which the host executes; the kernels
// and seccomp programs later sessions run with), the skills other sessions
// import, the plugin binaries and this configuration.
func (c *Config) runtimeFilesInWorkspace() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, f := range []struct{ what, path string }{
		{"state_dir", c.StateDir},
		{"the skills dir", c.Skills.Dir},
		{"plugin_dir", c.PluginDir},
		{"the configuration file", c.Path},
	} {
		if f.path == "" || !confine.Inside(f.path, c.Workspace) {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Runtime files inside the workspace",
			Detail: fmt.Sprintf("%s (%s) is inside the workspace %s. Sandbox code can write the whole workspace, "+
				"so it could rewrite what the runtime reads back from there. Keep the workspace a directory of its own "+
				"(the default is ./workspace beside runtime.hcl) or move %s out of it.", f.what, f.path, c.Workspace, f.what),
		})
	}
	return diags
}
