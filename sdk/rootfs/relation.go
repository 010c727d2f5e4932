package rootfs

import (
	"fmt"
	"strings"
)

// relation is one alternative of a Depends-style field: a package name,
// an optional architecture qualifier and an optional version constraint.
type relation struct {
	name, arch  string // arch: "", "any", "native" or an architecture
	op, version string
}

func (r relation) String() string {
	s := r.name
	if r.arch != "" {
		s += ":" + r.arch
	}
	if r.op != "" {
		s += " (" + r.op + " " + r.version + ")"
	}
	return s
}

// parseRelations parses a Depends, Pre-Depends or Provides field into
// groups of alternatives. Architecture restrictions ("[amd64]") that
// exclude arch drop the alternative; build profiles ("<!nocheck>") only
// concern source packages and are ignored.
func parseRelations(field, arch string) ([][]relation, error) {
	var groups [][]relation
	for _, group := range strings.Split(field, ",") {
		if strings.TrimSpace(group) == "" {
			continue
		}
		var alts []relation
		for _, alt := range strings.Split(group, "|") {
			r, keep, err := parseRelation(strings.TrimSpace(alt), arch)
			if err != nil {
				return nil, fmt.Errorf("relation %q: %w", strings.TrimSpace(group), err)
			}
			if keep {
				alts = append(alts, r)
			}
		}
		if len(alts) > 0 {
			groups = append(groups, alts)
		}
	}
	return groups, nil
}

func parseRelation(s, arch string) (r relation, keep bool, err error) {
	if i := strings.IndexByte(s, '<'); i >= 0 && !strings.Contains(s[:i], "(") {
		s = strings.TrimSpace(s[:i])
	}
	if i := strings.IndexByte(s, '['); i >= 0 {
		j := strings.IndexByte(s, ']')
		if j < i {
			return r, false, fmt.Errorf("unterminated architecture list")
		}
		if !archListed(strings.Fields(s[i+1:j]), arch) {
			return r, false, nil
		}
		s = strings.TrimSpace(s[:i] + s[j+1:])
	}
	if i := strings.IndexByte(s, '('); i >= 0 {
		j := strings.IndexByte(s, ')')
		if j < i {
			return r, false, fmt.Errorf("unterminated version constraint")
		}
		c := strings.TrimSpace(s[i+1 : j])
		k := strings.IndexFunc(c, func(c rune) bool { return c != '<' && c != '>' && c != '=' })
		if k <= 0 {
			return r, false, fmt.Errorf("bad version constraint %q", c)
		}
		r.op, r.version = c[:k], strings.TrimSpace(c[k:])
		if r.version == "" {
			return r, false, fmt.Errorf("bad version constraint %q", c)
		}
		s = strings.TrimSpace(s[:i])
	}
	r.name, r.arch, _ = strings.Cut(s, ":")
	if r.name == "" || strings.ContainsAny(r.name, " \t") {
		return r, false, fmt.Errorf("bad package name %q", s)
	}
	return r, true, nil
}

// archListed evaluates an architecture restriction list: either all
// positive ("[amd64 arm64]") or all negated ("[!i386]").
func archListed(list []string, arch string) bool {
	negated := false
	for _, a := range list {
		if n, ok := strings.CutPrefix(a, "!"); ok {
			negated = true
			if n == arch {
				return false
			}
		} else if a == arch {
			return true
		}
	}
	return negated
}
