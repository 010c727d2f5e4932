package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// CheckBackend reports, at its place in runtime.hcl, a default backend
// that nothing provides: no plugin of that name among available (the
// backends plugin_dir holds) and no sandbox block naming its executable.
// It suggests the nearest name and lists the ones there are. A file that
// names no backend, and a plugin_dir with no plugin at all (nothing was
// built yet: the runtime says so when it needs one), pass.
func (c *Config) CheckBackend(available []string) error {
	if c.backendRange == nil || len(available) == 0 || slices.Contains(available, c.Backend) {
		return nil
	}
	if sb, ok := c.Sandboxes[c.Backend]; ok && sb.Plugin != "" {
		return nil
	}
	known := slices.Clone(available)
	for name, sb := range c.Sandboxes {
		if sb.Plugin != "" && !slices.Contains(known, name) {
			known = append(known, name)
		}
	}
	sort.Strings(known)
	detail := fmt.Sprintf("No plugin provides backend %q: %s has no %s%s, and no sandbox %q { plugin = ... } block names an executable.",
		c.Backend, c.PluginDir, sdk.BinaryPrefix, c.Backend, c.Backend)
	if near := nearest(c.Backend, known); near != "" {
		detail += fmt.Sprintf(" Did you mean %q?", near)
	}
	detail += " Available: " + strings.Join(known, ", ") + "."
	return &Error{Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown backend", Detail: detail, Subject: c.backendRange}}, files: c.src}
}

// nearest is the candidate closest to name within a typo's distance (as
// HCL suggests attribute names), or "".
func nearest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, cand := range candidates {
		if d := levenshtein.Distance(name, cand, nil); d < bestDist {
			best, bestDist = cand, d
		}
	}
	return best
}
