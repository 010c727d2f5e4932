// Package catalog is what sandbox code can reuse — saved skills and MCP
// tools — ranked by relevance, so that a library of thousands does not
// grow every prompt: the agent's system prompt lists the entries most
// relevant to the task within a budget and says how many more exist, and
// sandbox code finds the rest with search_skills / search_tools and reads
// any definition with describe.
package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/mcpruntime/mcpruntime/core/internal/lexical"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// Kind says what an entry is.
type Kind string

// The kinds of entries.
const (
	KindSkill Kind = "skill"
	KindTool  Kind = "tool"
)

// Entry is one skill or tool.
type Entry struct {
	Kind Kind `json:"kind"`
	// Name is how code refers to it: "skills.parse_csv",
	// "tools.files.read_file".
	Name string `json:"name"`
	// Signature is the Python call with types, as listed:
	// "run(path: str) -> dict" for a skill, "read_file(path: str) -> str"
	// for a tool.
	Signature string `json:"signature"`
	// Summary is the first paragraph of its description, on one line.
	Summary string `json:"summary,omitempty"`
	// Import is the line that makes it callable.
	Import string `json:"import"`
	// rank orders entries when the task says nothing about them: recent
	// skills first, tools in their server's order.
	rank int
}

// ToolLister gives the MCP tools sandbox code can call (a *mcp.Hub).
type ToolLister interface {
	// ToolEntries lists the tools, in runtime.hcl and server order.
	ToolEntries() []Entry
	// ToolSource is the generated stub of tool name ("tools.x.y"), with
	// its docstring and types.
	ToolSource(name string) (string, bool)
}

// Catalog ranks the skills of a registry and the tools of a ToolLister. It
// caches its index until the skills index file or the tool list changes,
// so repeated searches from sandbox code cost a lookup, not a rebuild. It
// is safe for concurrent use.
type Catalog struct {
	skills *skills.Registry
	tools  ToolLister

	mu   sync.Mutex
	snap *snapshot
}

// New returns the catalog of reg's skills and tools' tools; either may be
// nil.
func New(reg *skills.Registry, tools ToolLister) *Catalog {
	return &Catalog{skills: reg, tools: tools}
}

// snapshot is the entries and their index at one moment.
type snapshot struct {
	key     string
	entries []Entry
	index   *lexical.Index
	count   map[Kind]int
}

// current returns an up-to-date snapshot, rebuilding it when the skills or
// the tools changed.
func (c *Catalog) current() (*snapshot, error) {
	var tools []Entry
	if c.tools != nil {
		tools = c.tools.ToolEntries()
	}
	key := c.skillsKey() + "|" + toolsKey(tools)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil && c.snap.key == key {
		return c.snap, nil
	}
	skillEntries, err := c.skillEntries()
	if err != nil {
		return nil, err
	}
	for i := range tools {
		tools[i].rank = i
	}
	s := &snapshot{key: key, index: lexical.New(), count: map[Kind]int{}}
	s.entries = append(skillEntries, tools...)
	for _, e := range s.entries {
		s.index.Add(lexical.Field{Text: e.Name, Weight: 3}, lexical.Field{Text: e.Signature, Weight: 1},
			lexical.Field{Text: e.Summary, Weight: 1})
		s.count[e.Kind]++
	}
	c.snap = s
	return s, nil
}

// skillsKey changes whenever the registry's index is rewritten.
func (c *Catalog) skillsKey() string {
	if c.skills == nil {
		return "-"
	}
	fi, err := os.Stat(filepath.Join(c.skills.Dir, "index.json"))
	if err != nil {
		return "none"
	}
	return fmt.Sprintf("%d.%d", fi.ModTime().UnixNano(), fi.Size())
}

func toolsKey(tools []Entry) string {
	h := sha256.New()
	for _, t := range tools {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", t.Name, t.Signature, t.Summary)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (c *Catalog) skillEntries() ([]Entry, error) {
	if c.skills == nil {
		return nil, nil
	}
	all, err := c.skills.List()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	// Recent skills first when the task does not say which are relevant.
	order := append([]skills.Skill(nil), all...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Created.After(order[j].Created) })
	out := make([]Entry, len(order))
	for i, s := range order {
		out[i] = Entry{Kind: KindSkill, Name: "skills." + s.Name, Signature: s.Signature, Summary: s.Description,
			Import: "from skills." + s.Name + " import run", rank: i}
	}
	return out, nil
}
