package skills

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// analyse runs analyze.py on code with the host's python3.
func analyse(t *testing.T, code string) analysis {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	js, _ := json.Marshal(code)
	script := strings.Replace(analyzeScript, "SOURCE_JSON", fmt.Sprintf("%q", string(js)), 1)
	out, err := exec.Command(py, "-c", script).Output()
	if err != nil {
		t.Fatalf("analyze.py: %v", err)
	}
	var a analysis
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("analysis %q: %v", out, err)
	}
	return a
}

// A function that reads a session global is not self-contained; one whose
// names are its own, imported, defined in the cell, builtins or another
// skill is.
func TestSelfContained(t *testing.T) {
	r := &Registry{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(r.Dir, "tax.py"), []byte("def tax(x):\n    return x * 0.2\n\ndef run(x):\n    return tax(x)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.write([]Skill{{Name: "tax", File: "tax.py"}}); err != nil {
		t.Fatal(err)
	}
	a := analyse(t, "def apply_rate(x: float) -> float:\n    return x * RATE\n\nprint(apply_rate(2))\n")
	imports, missing := r.resolve(a.Unresolved)
	if len(imports) != 0 || len(missing) != 1 || !strings.Contains(missing[0], "apply_rate reads RATE") {
		t.Fatalf("session global: %v %v", imports, missing)
	}
	code := `import math
from collections import Counter as C
LIMIT = 3
def helper(v):
    return [w for w in v if len(w) > LIMIT]
def words(text: str) -> dict:
    def norm(s):
        return s.lower().strip()
    total = 0
    for i, w in enumerate(helper(text.split())):
        total += i
    return {"top": C(map(norm, text.split())).most_common(1), "pi": math.pi, "tax": tax(total)}
print(words("a bb cccc dddd"))
`
	a = analyse(t, code)
	imports, missing = r.resolve(a.Unresolved)
	if len(missing) != 0 || len(imports) != 1 || imports[0] != "from skills.tax import tax" {
		t.Fatalf("self-contained code: imports %v, missing %v (%v)", imports, missing, a.Unresolved)
	}
	if !strings.Contains(a.Module, "LIMIT = 3") {
		t.Fatalf("a literal constant of the cell is kept: %s", a.Module)
	}
}

// A skill saved again under its name becomes version 2 (the module the
// import gives), the first kept in .versions; the same code with other
// docstrings and formatting is a duplicate.
func TestVersions(t *testing.T) {
	r := &Registry{Dir: t.TempDir()}
	v1 := Skill{Name: "f", File: "f.py", Hash: "h1", NormHash: "n1", Version: 1, Signature: "run() -> int"}
	if err := r.save(nil, nil, &v1, []byte("def run():\n    return 1\n")); err != nil {
		t.Fatal(err)
	}
	all, _ := r.List()
	if dup := duplicateOf(all, "other", "n1"); dup != "f" {
		t.Fatalf("same normalised body: %q", dup)
	}
	v2 := Skill{Name: "f", File: "f.py", Hash: "h2", NormHash: "n2", Version: 1, Signature: "run(x: int) -> int"}
	if err := r.save(all, find(all, "f"), &v2, []byte("def run(x):\n    return x\n")); err != nil {
		t.Fatal(err)
	}
	all, _ = r.List()
	if len(all) != 1 || all[0].Version != 2 || len(all[0].Previous) != 1 || all[0].Previous[0].Version != 1 || all[0].Signature != "run(x: int) -> int" {
		t.Fatalf("index %+v", all)
	}
	if b, _ := os.ReadFile(filepath.Join(r.Dir, "f.py")); !strings.Contains(string(b), "return x") {
		t.Fatalf("the latest is not what the import gives: %s", b)
	}
	old := filepath.Join(r.Dir, all[0].Previous[0].File)
	if b, _ := os.ReadFile(old); !strings.Contains(string(b), "return 1") {
		t.Fatalf("version 1 not kept: %s", b)
	}
	if dup := duplicateOf(all, "h1", "x"); dup != "f (version 1)" {
		t.Fatalf("an earlier version's duplicate: %q", dup)
	}
	if err := r.Remove("f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("remove left version 1: %v", err)
	}
}
