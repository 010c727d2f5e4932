package rootfs

import (
	"slices"
	"strings"
)

// moduleNames are Debian Python packages whose import name is not the
// package name without "python3-".
var moduleNames = map[string]string{
	"python3-pil":      "PIL",
	"python3-yaml":     "yaml",
	"python3-sklearn":  "sklearn",
	"python3-bs4":      "bs4",
	"python3-dateutil": "dateutil",
}

// notModule are python3-* packages that are not a library (the
// interpreter's own packaging).
var notModule = map[string]bool{"": true, "dev": true, "minimal": true, "full": true, "all": true, "venv": true, "doc": true, "examples": true, "tk": true}

// PythonModules are the import names of the Python library packages among
// Debian package names ("python3-pandas" → "pandas"), sorted; other
// packages are left out. Backends declare them as Capabilities.Libraries.
func PythonModules(packages []string) []string {
	var out []string
	for _, p := range packages {
		name, ok := moduleNames[p]
		if !ok {
			rest, found := strings.CutPrefix(p, "python3-")
			if !found || notModule[rest] || strings.HasSuffix(rest, "-dev") || strings.HasSuffix(rest, "-dbg") {
				continue
			}
			name = strings.ReplaceAll(rest, "-", "_")
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
