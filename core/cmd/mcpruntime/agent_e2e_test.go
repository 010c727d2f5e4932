package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

func TestRunSavesAndReusesSkills(t *testing.T) {
	step1 := "Let me compute.\n```python\ndef add_numbers(a: int, b: int) -> int:\n    \"\"\"Add two integers.\"\"\"\n    return a + b\n\nprint(add_numbers(2, 3))\n```"
	srv := llmtest.New(
		llmtest.Reply{Content: step1, PromptTokens: 10, CompletionTokens: 5},
		llmtest.Reply{Content: "The answer is 5."},
		llmtest.Reply{Content: "```python\nfrom skills.add_numbers import run\nprint(run(40, 2))\n```"},
		llmtest.Reply{Content: "42"},
	)
	defer srv.Close()
	dir := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n  model = \"scripted\"\n}\n")
	r := cli(t, dir, "", "run", "add 2 and 3")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "The answer is 5." {
		t.Fatalf("first run: %+v", r)
	}
	r = cli(t, dir, "", "skills", "list", "--json")
	var list []struct{ Name, Signature, Description string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("skills list: %v %+v", err, r)
	}
	if list[0].Name != "add_numbers" || list[0].Signature != "run(a: int, b: int) -> int" || list[0].Description != "Add two integers." {
		t.Fatalf("skill %+v", list[0])
	}
	r = cli(t, dir, "", "run", "--json", "add 40 and 2")
	var res struct {
		Answer  string
		Success bool
		Session string
		Steps   []struct{ Stdout string }
	}
	if err := json.Unmarshal([]byte(lastLine(r.stdout)), &res); err != nil || !res.Success || res.Answer != "42" || len(res.Steps) != 1 || res.Steps[0].Stdout != "42\n" {
		t.Fatalf("second run: %v %+v", err, r)
	}
	// The run's step is in the replay log, labelled with its task, with state saved.
	r = cli(t, dir, "", "replay", "show", res.Session, "--json")
	var shown struct {
		Steps []struct {
			Task, Code, State string
			OK                bool
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown.Steps) != 1 || shown.Steps[0].Task != "add 40 and 2" || !shown.Steps[0].OK || shown.Steps[0].State == "" {
		t.Fatalf("replay of the run: %v %+v", err, r)
	}
	reqs := srv.Requests()
	if len(reqs) != 4 || !strings.Contains(reqs[2].Messages[0].Content, "add_numbers(a: int, b: int) -> int — Add two integers.") {
		t.Fatalf("the second run's prompt does not list the skill: %+v", reqs[len(reqs)-1].Messages[0])
	}
	if r := cli(t, dir, "", "skills", "rm", "add_numbers"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
}

func TestRunFailures(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: ""},
		llmtest.Reply{Raw: "not json at all"},
	)
	defer srv.Close()
	dir := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n}\nagent {\n  max_steps = 2\n}\n")
	if r := cli(t, dir, "", "run", "x"); r.code != 1 || !strings.Contains(r.stderr, "empty reply") {
		t.Fatalf("empty reply: %+v", r)
	}
	if r := cli(t, dir, "", "run", "x"); r.code != 1 || !strings.Contains(r.stderr, "not a chat completion") {
		t.Fatalf("garbage: %+v", r)
	}
	loop := llmtest.New()
	loop.Answer = func(llmtest.Request) string { return "```python\nprint('again')\n```" }
	defer loop.Close()
	dir = project(t, "llm {\n  base_url = \""+loop.BaseURL()+"\"\n}\nagent {\n  max_steps = 3\n}\n")
	if r := cli(t, dir, "", "run", "x"); r.code != 1 || !strings.Contains(r.stderr, "stopped after 3 steps") {
		t.Fatalf("endless code: %+v", r)
	}
	if r := cli(t, t.TempDir(), "", "run", "x"); r.code != 2 || !strings.Contains(r.stderr, "no endpoint configured") {
		t.Fatalf("no llm: %+v", r)
	}
}

func TestSkillsBadInput(t *testing.T) {
	defineAndCall := "```python\ndef twice(n: int) -> int:\n    \"\"\"Double a number.\"\"\"\n    return 2 * n\n\nprint(twice(21))\n```"
	srv := llmtest.New(
		llmtest.Reply{Content: defineAndCall}, llmtest.Reply{Content: "42"},
		llmtest.Reply{Content: "```python\nfrom skills.twice import run\nprint(run(1))\n```"}, llmtest.Reply{Content: "gave up"},
	)
	defer srv.Close()
	dir := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n}\n")
	if r := cli(t, dir, "", "run", "double 21"); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	// Someone edits the skill by hand into invalid Python: listing still
	// works, the import fails with a clear SyntaxError the model sees, and
	// nothing else is lost.
	path := filepath.Join(dir, "skills", "twice.py")
	if err := os.WriteFile(path, []byte("def twice(:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, dir, "", "skills", "list"); r.code != 0 || !strings.Contains(r.stdout, "twice") {
		t.Fatalf("list with a broken skill: %+v", r)
	}
	r := cli(t, dir, "", "run", "--json", "double 1")
	if !strings.Contains(r.stdout, "SyntaxError") {
		t.Fatalf("the broken skill's error did not reach the model: %+v", r)
	}
	reqs := srv.Requests()
	if last := reqs[len(reqs)-1].Messages; !strings.Contains(last[len(last)-1].Content, "SyntaxError") {
		t.Fatalf("observation lacks the SyntaxError: %+v", last[len(last)-1])
	}
}

func TestSkillsDirNotWritable(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: "```python\ndef inc(n: int) -> int:\n    return n + 1\n\nprint(inc(1))\n```"}, llmtest.Reply{Content: "2"},
	)
	defer srv.Close()
	dir := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n}\nskills {\n  dir = \"./skills-file\"\n}\n")
	// A file where the skills directory should be: saving must fail cleanly.
	os.WriteFile(filepath.Join(dir, "skills-file"), []byte("not a directory"), 0o644)
	r := cli(t, dir, "", "--log-level", "warn", "run", "increment 1")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "2" {
		t.Fatalf("the run must still succeed: %+v", r)
	}
	if !strings.Contains(r.stderr, "skill") {
		t.Fatalf("no warning about the skill that could not be saved: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "skills-file")); string(b) != "not a directory" {
		t.Fatal("the file in the way was touched")
	}
}

func TestKilledRunLeavesReadableReplay(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: "```python\nstage = 'one'\nprint(stage)\n```"},
		llmtest.Reply{Content: "never seen", Delay: time.Minute},
	)
	defer srv.Close()
	dir := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n}\n")
	cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), "run", "--session", "doomed", "work in stages")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "workspace", ".replay", "doomed.jsonl")
	deadline := time.Now().Add(60 * time.Second)
	for len(srv.Requests()) < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run never reached its second model call")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL) // the core dies between steps
	cmd.Wait()
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("no replay log after the kill: %v", err)
	}
	r := cli(t, dir, "", "replay", "show", "doomed", "--json")
	var shown struct {
		Steps []struct {
			Step   int
			Stdout string
			Task   string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || r.code != 0 || len(shown.Steps) != 1 ||
		shown.Steps[0].Stdout != "one\n" || shown.Steps[0].Task != "work in stages" {
		t.Fatalf("replay show after a killed run: %v %+v", err, r)
	}
	// The session lives on in the daemon (run --session attaches to it);
	// stopping the daemon leaves no plugin process behind.
	if r := cli(t, dir, "", "daemon", "stop"); r.code != 0 {
		t.Fatalf("daemon stop: %+v", r)
	}
	waitGone(t, filepath.Join(binDir, "plugins"))
}
