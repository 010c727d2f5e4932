package mcp

import (
	"strconv"
	"strings"
)

// pythonKeywords may not be used as identifiers.
var pythonKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true, "async": true,
	"await": true, "break": true, "class": true, "continue": true, "def": true, "del": true, "elif": true,
	"else": true, "except": true, "finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true, "not": true, "or": true,
	"pass": true, "raise": true, "return": true, "try": true, "while": true, "with": true, "yield": true,
}

// identifier turns name into a Python identifier: characters other than
// ASCII letters, digits and '_' become '_', a leading digit gets prefix,
// keywords get a trailing '_'.
func identifier(name, prefix string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id == "" || strings.Trim(id, "_") == "" {
		id = prefix + id
	}
	if id[0] >= '0' && id[0] <= '9' {
		id = prefix + id
	}
	if pythonKeywords[id] {
		id += "_"
	}
	return id
}

// namer hands out distinct identifiers.
type namer struct{ taken map[string]bool }

func newNamer(reserved ...string) *namer {
	n := &namer{taken: map[string]bool{}}
	for _, r := range reserved {
		n.taken[r] = true
	}
	return n
}

// name returns a free identifier for raw.
func (n *namer) name(raw, prefix string) string {
	id := identifier(raw, prefix)
	if n.taken[id] {
		base := id
		if !strings.HasSuffix(base, "_") {
			base += "_"
		}
		for i := 2; ; i++ {
			if c := base + strconv.Itoa(i); !n.taken[c] {
				id = c
				break
			}
		}
	}
	n.taken[id] = true
	return id
}
