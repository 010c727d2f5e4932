package catalog

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// maxSummary bounds one entry's description in the listing.
const maxSummary = 200

// Unavailabler is implemented by a ToolLister that knows servers which
// failed to start; the listing names them so the model does not call them.
type Unavailabler interface {
	Unavailable() map[string]string
}

// Prompt lists skills and tools for a system prompt within budget
// characters (config.DefaultListingBudget when ≤ 0). When everything fits, everything is
// listed; otherwise each kind gets half the budget (what one leaves goes
// to the other), the entries most relevant to task come first, and the
// listing says how many more exist and how to find them.
func (c *Catalog) Prompt(task string, budget int) (string, error) {
	if budget <= 0 {
		budget = config.DefaultListingBudget
	}
	s, err := c.current()
	if err != nil {
		return "", err
	}
	var skillLines, toolLines []string
	for _, e := range c.ranked(s, task) {
		if e.Kind == KindSkill {
			skillLines = append(skillLines, line(e))
		} else {
			toolLines = append(toolLines, line(e))
		}
	}
	sb, tb := split(budget, size(skillLines), size(toolLines))
	var parts []string
	if len(skillLines) > 0 {
		parts = append(parts, section(skillHeader, skillMore, skillLines, sb))
	}
	if len(toolLines) > 0 {
		parts = append(parts, section(toolHeader(s), toolMore, toolLines, tb))
	}
	if u, ok := c.tools.(Unavailabler); ok {
		if down := unavailable(u.Unavailable()); down != "" {
			parts = append(parts, down)
		}
	}
	return strings.Join(parts, "\n"), nil
}

// ranked orders every entry: those that match the task by relevance, then
// the rest in their default order.
func (c *Catalog) ranked(s *snapshot, task string) []Entry {
	out := make([]Entry, 0, len(s.entries))
	taken := make([]bool, len(s.entries))
	for _, h := range s.index.Search(task, len(s.entries), nil) {
		out = append(out, s.entries[h.Doc])
		taken[h.Doc] = true
	}
	rest := make([]Entry, 0, len(s.entries)-len(out))
	for d, e := range s.entries {
		if !taken[d] {
			rest = append(rest, e)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].rank < rest[j].rank })
	return append(out, rest...)
}

// split shares budget between two sections that need a and b characters.
func split(budget, a, b int) (int, int) {
	half := budget / 2
	switch {
	case a+b <= budget:
		return a, b
	case a < half:
		return a, budget - a
	case b < half:
		return budget - b, b
	}
	return half, budget - half
}

const (
	skillHeader = "Skills you can reuse (from skills.<name> import run):"
	skillMore   = `%d of %d skills listed, the most relevant to the task; search_skills("words") finds the others and describe("skills.<name>") shows one's source.`
	toolMore    = `%d of %d tools listed, the most relevant to the task; search_tools("words") finds the others and describe("tools.<server>.<tool>") shows one's full stub.`
)

func toolHeader(s *snapshot) string {
	example := ""
	for _, e := range s.entries {
		if e.Kind == KindTool {
			example = " (e.g. `" + e.Import + "`)"
			break
		}
	}
	return "MCP tools you can call from your code" + example +
		"; each returns the tool's result (text, a dict for structured results, a list of parts with mcpruntime.Image/Audio/Resource for binary content), has an async form f.call_async(...) for asyncio.gather, and raises mcpruntime.ToolError (.server, .tool, .code) when the tool fails:"
}

// section is a header and as many lines as fit in budget characters; when
// some do not fit it says how many are listed.
func section(header, more string, lines []string, budget int) string {
	var b strings.Builder
	used, n := 0, 0
	for _, l := range lines {
		if used+len(l)+1 > budget && n > 0 {
			break
		}
		used += len(l) + 1
		n++
	}
	b.WriteString(header + "\n")
	for _, l := range lines[:n] {
		b.WriteString(l + "\n")
	}
	if n < len(lines) {
		fmt.Fprintf(&b, more+"\n", n, len(lines))
	}
	return b.String()
}

func line(e Entry) string {
	var l string
	if e.Kind == KindSkill {
		l = "- " + strings.TrimPrefix(e.Name, "skills.") + strings.TrimPrefix(e.Signature, "run")
	} else {
		l = "- " + e.Name[:strings.LastIndexByte(e.Name, '.')+1] + e.Signature
	}
	if d := summary(e.Summary); d != "" {
		l += " — " + d
	}
	return l
}

func size(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	return n
}

// summary is the first paragraph of a description, on one line, clipped.
func summary(desc string) string {
	desc = strings.TrimSpace(desc)
	if i := strings.Index(desc, "\n\n"); i >= 0 {
		desc = desc[:i]
	}
	desc = strings.Join(strings.Fields(desc), " ")
	if r := []rune(desc); len(r) > maxSummary {
		desc = string(r[:maxSummary-1]) + "…"
	}
	return desc
}

func unavailable(down map[string]string) string {
	if len(down) == 0 {
		return ""
	}
	names := make([]string, 0, len(down))
	for n := range down {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("MCP servers unavailable now (calls to their tools fail until they recover):\n")
	for _, n := range names {
		b.WriteString("- " + n + ": " + summary(down[n]) + "\n")
	}
	return b.String()
}
