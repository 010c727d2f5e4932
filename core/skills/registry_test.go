package skills

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSanitizeAndUniqueNames(t *testing.T) {
	for in, want := range map[string]string{"AddNumbers": "addnumbers", "fetch-page v2": "fetch_page_v2", "3d": "skill_3d", "__": "skill_"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	r := &Registry{Dir: t.TempDir()}
	os.WriteFile(filepath.Join(r.Dir, "hand_written.py"), []byte("x = 1\n"), 0o644)
	all := []Skill{{Name: "add"}, {Name: "add_2"}}
	if got := r.uniqueName("add", all); got != "add_3" {
		t.Errorf("uniqueName(add) = %q", got)
	}
	if got := r.uniqueName("hand_written", all); got != "hand_written_2" {
		t.Errorf("a file not in the index is never overwritten: got %q", got)
	}
	if got := r.uniqueName("index", nil); got != "index_2" {
		t.Errorf("index is reserved: got %q", got)
	}
}

func TestIndexRoundTripAndRemove(t *testing.T) {
	r := &Registry{Dir: t.TempDir()}
	if all, err := r.List(); err != nil || len(all) != 0 {
		t.Fatalf("empty registry: %v %v", all, err)
	}
	os.WriteFile(filepath.Join(r.Dir, "b.py"), []byte("def run(): pass\n"), 0o644)
	if err := r.write([]Skill{{Name: "b", File: "b.py", Signature: "run(x: int) -> int", Description: "doubles"}, {Name: "a", File: "a.py"}}); err != nil {
		t.Fatal(err)
	}
	all, _ := r.List()
	if len(all) != 2 || all[0].Name != "a" {
		t.Fatalf("list is sorted by name: %+v", all)
	}
	if _, src, err := r.Get("b"); err != nil || !strings.Contains(src, "def run") {
		t.Fatalf("get: %q %v", src, err)
	}
	if err := r.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "b.py")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("module not removed")
	}
	if err := r.Remove("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestCorruptIndexIsReportedNotDropped(t *testing.T) {
	r := &Registry{Dir: t.TempDir()}
	os.WriteFile(filepath.Join(r.Dir, "index.json"), []byte("{not json"), 0o644)
	if _, err := r.List(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt index: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.Dir, "index.json")); string(b) != "{not json" {
		t.Fatal("the corrupt index was modified")
	}
}
