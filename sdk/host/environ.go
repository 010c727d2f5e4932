package host

import (
	"os"
	"sort"
	"strings"
)

// BaseEnv names the host variables every process the runtime starts for
// third parties (plugins, MCP servers) receives: what a program needs to find
// executables, its home and temporary directory, and to speak the user's
// locale. Nothing that could hold a credential is on it; a block in
// runtime.hcl passes anything more by name (pass_env) or by value (env).
var BaseEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ",
	"LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES",
	"XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
}

// RuntimeEnv names the runtime's own settings a plugin reads from its
// environment; they hold no secrets.
var RuntimeEnv = []string{"MCPRUNTIME_PLUGIN_LOG_LEVEL"}

// AllowedEnv builds the environment of a third-party process: the host's
// values of BaseEnv and RuntimeEnv, the host's values of the names in pass
// (a name the host does not set is left out), then set (NAME → value),
// which wins over everything before it. The host's other variables (API
// keys, tokens) are never copied. The result is sorted, one KEY=VALUE each.
func AllowedEnv(pass []string, set map[string]string) []string {
	env := map[string]string{}
	for _, group := range [][]string{BaseEnv, RuntimeEnv, pass} {
		for _, name := range group {
			if v, ok := os.LookupEnv(name); ok {
				env[name] = v
			}
		}
	}
	for k, v := range set {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ValidEnvName reports whether name can be an environment variable's name:
// non-empty, no '=' and no NUL.
func ValidEnvName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00")
}
