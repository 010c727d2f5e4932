package catalog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mcpruntime/mcpruntime/core/skills"
)

// MaxResults bounds one search.
const MaxResults = 50

// ErrUnknownEntry is returned by Describe for a name no entry has.
var ErrUnknownEntry = errors.New("no such skill or tool")

// Search returns up to limit entries of kind ("" for both) that match
// query, best first. An empty query lists entries in their default order
// (recent skills, then tools as their servers list them).
func (c *Catalog) Search(kind Kind, query string, limit int) ([]Entry, error) {
	limit = min(max(limit, 1), MaxResults)
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	keep := func(d int) bool { return kind == "" || s.entries[d].Kind == kind }
	if strings.TrimSpace(query) == "" {
		out := []Entry{}
		for d := range s.entries {
			if keep(d) && len(out) < limit {
				out = append(out, s.entries[d])
			}
		}
		return out, nil
	}
	hits := s.index.Search(query, limit, keep)
	out := make([]Entry, len(hits))
	for i, h := range hits {
		out[i] = s.entries[h.Doc]
	}
	return out, nil
}

// Describe returns the full definition of name: a skill's source
// ("skills.x" or "x") or a tool's generated stub ("tools.server.tool").
func (c *Catalog) Describe(name string) (string, error) {
	name = strings.TrimSpace(name)
	if strings.HasPrefix(name, "tools.") && c.tools != nil {
		if src, ok := c.tools.ToolSource(name); ok {
			return src, nil
		}
	}
	if c.skills != nil && !strings.HasPrefix(name, "tools.") {
		_, src, err := c.skills.Get(strings.TrimPrefix(name, "skills."))
		if err == nil {
			return src, nil
		}
		if !errors.Is(err, skills.ErrNotFound) {
			return "", err
		}
	}
	return "", fmt.Errorf("%w %q (names look like skills.<name> or tools.<server>.<tool>; search_skills / search_tools list them)", ErrUnknownEntry, name)
}
