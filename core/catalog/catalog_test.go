package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/skills"
)

// fakeTools is a ToolLister of generated tools.
type fakeTools struct {
	entries []Entry
	down    map[string]string
}

func (f *fakeTools) ToolEntries() []Entry { return append([]Entry(nil), f.entries...) }
func (f *fakeTools) ToolSource(name string) (string, bool) {
	for _, e := range f.entries {
		if e.Name == name {
			return "def " + e.Signature + ":\n    ...\n", true
		}
	}
	return "", false
}
func (f *fakeTools) Unavailable() map[string]string { return f.down }

var topics = []string{"csv", "json", "currency", "weather", "geometry", "invoice", "email", "calendar",
	"image", "matrix", "tokenize", "compress", "sql", "regex", "histogram", "portfolio", "genome", "route"}

// library writes a registry of n generated skills (one of them the needle)
// and returns it with a ToolLister of nTools tools.
func library(t testing.TB, n, nTools int) (*skills.Registry, *fakeTools) {
	dir := t.TempDir()
	var all []skills.Skill
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		topic := topics[i%len(topics)]
		name := fmt.Sprintf("%s_step_%d", topic, i)
		desc := fmt.Sprintf("Compute step %d of the %s pipeline over rows of a table.", i, topic)
		if i == n/2 {
			name, desc = "haversine_distance", "Great-circle distance in km between two latitude/longitude points."
		}
		all = append(all, skills.Skill{Name: name, Signature: "run(rows: list, limit: int) -> dict", Description: desc,
			File: name + ".py", Created: created.Add(time.Duration(i) * time.Minute)})
		src := fmt.Sprintf("def run(rows: list, limit: int) -> dict:\n    %q\n    return {}\n", desc)
		if err := os.WriteFile(filepath.Join(dir, name+".py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(map[string]any{"skills": all})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tools := &fakeTools{down: map[string]string{"flaky": "command \"flaky-server\" not found"}}
	for i := range nTools {
		server := fmt.Sprintf("srv%d", i%10)
		topic := topics[(i*7)%len(topics)]
		tool := fmt.Sprintf("%s_op_%d", topic, i)
		tools.entries = append(tools.entries, Entry{Kind: KindTool, Name: "tools." + server + "." + tool,
			Signature: tool + "(path: str, mode: str = None) -> dict", Summary: "Run operation " + fmt.Sprint(i) + " on " + topic + " data.",
			Import: "from tools." + server + " import " + tool})
	}
	return &skills.Registry{Dir: dir}, tools
}

func TestPromptStaysWithinBudgetAndListsTheRelevantSkill(t *testing.T) {
	reg, tools := library(t, 2000, 300)
	c := New(reg, tools)
	const budget = 6000
	p, err := c.Prompt("How far apart are Paris and Rome? Use the great-circle distance between their coordinates.", budget)
	if err != nil {
		t.Fatal(err)
	}
	// The header lines and the unavailable list come on top of the entries.
	if len(p) > budget+1000 {
		t.Fatalf("listing is %d characters, budget %d", len(p), budget)
	}
	if !strings.Contains(p, "- haversine_distance(rows: list, limit: int) -> dict") {
		t.Fatalf("the skill matching the task is not listed:\n%s", p)
	}
	for _, want := range []string{"of 2000 skills listed", "of 300 tools listed", `search_skills("words")`, "flaky:", "from tools.srv0 import"} {
		if !strings.Contains(p, want) {
			t.Errorf("listing lacks %q:\n%s", want, p)
		}
	}
}

func TestPromptListsEverythingWhenItFits(t *testing.T) {
	reg, tools := library(t, 3, 2)
	p, err := New(reg, tools).Prompt("anything", 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p, " listed, the most relevant") || strings.Count(p, "\n- ") < 5 {
		t.Fatalf("a small library must be listed whole:\n%s", p)
	}
}

func TestSearchFindsAnySkillQuickly(t *testing.T) {
	reg, tools := library(t, 2000, 300)
	c := New(reg, tools)
	var took []time.Duration
	for i := 0; i < 2000; i += 97 {
		want := fmt.Sprintf("%s_step_%d", topics[i%len(topics)], i)
		if i == 1000 {
			continue
		}
		start := time.Now()
		got, err := c.Search(KindSkill, fmt.Sprintf("step %d of the %s pipeline", i, topics[i%len(topics)]), 5)
		took = append(took, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].Name != "skills."+want {
			t.Fatalf("search for %s gave %+v", want, got)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	// The bound is for a search from sandbox code (the e2e test
	// checks that); the catalog's part must be a small share of it.
	if med := took[len(took)/2]; med > 50*time.Millisecond {
		t.Fatalf("median search took %s (> 50 ms)", med)
	}
}

func TestSearchToolsAndDescribe(t *testing.T) {
	reg, tools := library(t, 10, 30)
	c := New(reg, tools)
	got, err := c.Search(KindTool, "geometry operation 1", 10)
	if err != nil || len(got) == 0 || got[0].Kind != KindTool {
		t.Fatalf("search tools = %+v (%v)", got, err)
	}
	src, err := c.Describe(got[0].Name)
	if err != nil || !strings.HasPrefix(src, "def ") {
		t.Fatalf("describe %s = %q, %v", got[0].Name, src, err)
	}
	src, err = c.Describe("skills.csv_step_0")
	if err != nil || !strings.Contains(src, "def run(") {
		t.Fatalf("describe skill = %q, %v", src, err)
	}
	if _, err := c.Describe("skills.nope"); err == nil {
		t.Fatal("describe of an unknown skill succeeded")
	}
}

func TestCatalogSeesANewSkill(t *testing.T) {
	reg, _ := library(t, 5, 0)
	c := New(reg, nil)
	if got, _ := c.Search(KindSkill, "zebra", 5); len(got) != 0 {
		t.Fatalf("found %+v before the skill exists", got)
	}
	all, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, skills.Skill{Name: "zebra_count", Signature: "run() -> int", Description: "count zebras", File: "zebra_count.py"})
	b, _ := json.Marshal(map[string]any{"skills": all})
	// A later write must be seen even within the file system's mtime
	// granularity: the size changes too.
	if err := os.WriteFile(filepath.Join(reg.Dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := c.Search(KindSkill, "zebra", 5)
	if err != nil || !slices.ContainsFunc(got, func(e Entry) bool { return e.Name == "skills.zebra_count" }) {
		t.Fatalf("search after the save = %+v, %v", got, err)
	}
}
