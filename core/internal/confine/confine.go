// Package confine answers whether a path stays inside a directory once its
// symlinks are followed, for paths that may not exist yet (a directory the
// runtime is about to create, a file about to be written). It checks
// configured paths (the layout check of runtime.hcl); it is no guard for
// paths inside the workspace, whose symlinks can be swapped between a check
// and a use: code reading or writing the workspace's contents goes through
// sdk/nofollow instead, which never follows them.
package confine

import (
	"path/filepath"
	"strings"
)

// Resolve is p with the symlinks of its longest existing prefix followed;
// the part that does not exist yet is appended as it is.
func Resolve(p string) string {
	p = filepath.Clean(p)
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// Inside reports whether path is dir or below it, both resolved.
func Inside(path, dir string) bool {
	rel, err := filepath.Rel(Resolve(dir), Resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
