package sdk

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// LibMount is a session mount placed below GuestLib: Rel is its path
// relative to GuestLib ("skills", "tools/files"), Source the absolute host
// directory. Library mounts are read-only whatever the Mount asks.
type LibMount struct {
	Rel    string
	Source string
}

// LibMounts validates a session's mounts the one way every backend must:
// each target lies strictly below GuestLib with no ".." step, no two
// targets are the same, and each source is an existing directory. Backends
// that can mount only below GuestLib (all of today's) use the result.
func LibMounts(spec *SessionSpec) ([]LibMount, error) {
	out := make([]LibMount, 0, len(spec.Mounts))
	seen := map[string]bool{}
	for _, m := range spec.Mounts {
		rel, err := libRel(m.Target)
		if err != nil {
			return nil, err
		}
		if seen[rel] {
			return nil, fmt.Errorf("mount target %s given twice", m.Target)
		}
		seen[rel] = true
		src, err := filepath.Abs(m.Source)
		if err != nil {
			return nil, fmt.Errorf("mount %s: source: %w", m.Target, err)
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("mount %s: source: %w", m.Target, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("mount %s: source %s is not a directory", m.Target, src)
		}
		out = append(out, LibMount{Rel: rel, Source: src})
	}
	return out, nil
}

func libRel(target string) (string, error) {
	rel, ok := strings.CutPrefix(target, GuestLib+"/")
	// Clean leaves "a//b", "./a", "a/.." and "a/../../b" changed, and a
	// path that climbs out starts with "..".
	if !ok || rel == "" || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("mount target %q: only clean paths below %s are supported", target, GuestLib)
	}
	return rel, nil
}
