package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A library of 2,000 skills: sandbox code finds any of them with
// search_skills in well under 50 ms and reads its source with describe.
func TestSearchSkillsFromSandboxCode(t *testing.T) {
	dir := project(t, "")
	lib := filepath.Join(dir, "skills")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	topics := []string{"csv", "json", "currency", "weather", "geometry", "invoice", "email", "calendar", "matrix", "regex"}
	var all []map[string]any
	for i := range 2000 {
		name := fmt.Sprintf("%s_step_%d", topics[i%len(topics)], i)
		desc := fmt.Sprintf("Step %d of the %s pipeline over the rows of a table.", i, topics[i%len(topics)])
		if i == 1234 {
			name, desc = "haversine_distance", "Great-circle distance in km between two latitude/longitude points."
		}
		all = append(all, map[string]any{"name": name, "signature": "run(rows: list) -> dict", "description": desc,
			"file": name + ".py", "created": time.Unix(int64(i), 0).UTC()})
		src := fmt.Sprintf("def run(rows: list) -> dict:\n    %q\n    return {}\n", desc)
		if err := os.WriteFile(filepath.Join(lib, name+".py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(map[string]any{"skills": all})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code := `import time
took = []
for q in ["great-circle distance between two points", "step 977 of the calendar pipeline", "step 3 of the weather pipeline"] * 5:
    t = time.perf_counter()
    hits = search_skills(q, limit=3)
    took.append(time.perf_counter() - t)
    print(hits[0]["name"], hits[0]["import"])
took.sort()
print("median_ms", took[len(took) // 2] * 1000)
print(describe("skills.haversine_distance").splitlines()[0])
`
	r := cli(t, dir, "", "exec", "-c", code)
	if r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	for _, want := range []string{"skills.haversine_distance from skills.haversine_distance import run", "skills.calendar_step_977 ", "skills.weather_step_3 ", "def run(rows: list) -> dict:"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	var med float64
	for _, l := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "median_ms "); ok {
			med, _ = strconv.ParseFloat(v, 64)
		}
	}
	// The bound, measured inside the sandbox (host call included).
	if med <= 0 || med >= 50 {
		t.Fatalf("search_skills median %.1f ms, want < 50 ms", med)
	}
	t.Logf("search_skills over 2,000 skills from sandbox code: median %.2f ms", med)
}
