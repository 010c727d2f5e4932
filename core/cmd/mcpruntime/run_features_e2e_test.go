package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

func llmBlock(srv *llmtest.Server, extra string) string {
	return "llm {\n  base_url = \"" + srv.BaseURL() + "\"\n  model = \"scripted\"\n" + extra + "}\n"
}

// events decodes `run --json`'s NDJSON: the events, then the result.
func events(t *testing.T, stdout string) ([]map[string]any, map[string]any) {
	t.Helper()
	var all []map[string]any
	for _, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not NDJSON: %q: %v", line, err)
		}
		all = append(all, e)
	}
	if len(all) == 0 || all[len(all)-1]["event"] != "result" {
		t.Fatalf("the last line is not the result: %q", stdout)
	}
	return all[:len(all)-1], all[len(all)-1]
}

// A function reading a global of an earlier step is not saved as a skill,
// and the step says why; --json streams the run's events, result last.
func TestRunSkipsSkillsReadingSessionGlobals(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: "```python\nRATE = 0.2\nprint('rate set')\n```"},
		llmtest.Reply{Content: "```python\ndef apply_rate(x: float) -> float:\n    \"\"\"Apply the rate.\"\"\"\n    return x * RATE\n\nprint(apply_rate(10.0))\n```"},
		llmtest.Reply{Content: "2.0"},
	)
	defer srv.Close()
	dir := project(t, llmBlock(srv, ""))
	r := cli(t, dir, "", "run", "--json", "apply a rate of 0.2 to 10")
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	evs, res := events(t, r.stdout)
	var kinds []string
	for _, e := range evs {
		if k := e["event"].(string); len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	if got := strings.Join(kinds, " "); got != "step_started output step_done step_started output step_done answer" {
		t.Fatalf("events %s", got)
	}
	steps := res["steps"].([]any)
	skill, _ := steps[1].(map[string]any)["skill"].(string)
	if !strings.Contains(skill, "not self-contained") || !strings.Contains(skill, "apply_rate reads RATE") {
		t.Fatalf("step 2's skill note %q", skill)
	}
	if r := cli(t, dir, "", "skills", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a skill reading a session global was saved: %+v", r)
	}
}

// A 100 KB output reaches the model with its head, its last line and the
// elided middle marked; progress shows on stderr.
func TestRunObservationKeepsTheLastLine(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: "```python\nprint('FIRST')\nfor i in range(1600):\n    print('row', i, 'x' * 60)\nprint('FINAL 42')\n```"},
		llmtest.Reply{Content: "42"},
	)
	defer srv.Close()
	dir := project(t, llmBlock(srv, ""))
	r := cli(t, dir, "", "run", "print a lot")
	if r.code != 0 || !strings.Contains(r.stderr, "step 1: print('FIRST')") || !strings.Contains(r.stderr, "last line: FINAL 42") {
		t.Fatalf("run: %+v", r)
	}
	reqs := srv.Requests()
	obs := reqs[1].Messages[len(reqs[1].Messages)-1].Content
	if !strings.Contains(obs, "FIRST\n") || !strings.Contains(obs, "FINAL 42\n") || !strings.Contains(obs, " bytes elided ...]") || len(obs) > 17<<10 {
		t.Fatalf("observation of %d bytes: %q ... %q", len(obs), obs[:200], obs[len(obs)-200:])
	}
}

// A cell calling ask_llm 300 times stops at the run's budget with an error
// that names the setting.
func TestRunAskLLMBudget(t *testing.T) {
	srv := llmtest.New(llmtest.Reply{Content: "```python\nn = 0\ntry:\n    for i in range(300):\n        ask_llm('q')\n        n += 1\nexcept Exception as e:\n    print(n, e)\n```"})
	srv.Answer = func(req llmtest.Request) string {
		if last := req.Messages[len(req.Messages)-1]; last.Content == "q" {
			return "a"
		}
		return "done"
	}
	defer srv.Close()
	dir := project(t, llmBlock(srv, "")+"agent {\n  ask_llm_calls = 100\n}\n")
	r := cli(t, dir, "", "run", "--json", "spend")
	_, res := events(t, r.stdout)
	out := res["steps"].([]any)[0].(map[string]any)["stdout"].(string)
	if !strings.HasPrefix(out, "100 ") || !strings.Contains(out, "ask_llm budget of 100 calls for this run exhausted (agent.ask_llm_calls)") {
		t.Fatalf("stdout %q (%+v)", out, r)
	}
	if n := len(srv.Requests()); n != 102 {
		t.Fatalf("%d requests reached the model, want 100 ask_llm calls and 2 replies", n)
	}
}

// A model endpoint that never answers fails the run within llm.deadline.
func TestRunHungModelFailsWithinDeadline(t *testing.T) {
	srv := llmtest.New(llmtest.Reply{Delay: time.Hour})
	defer srv.Close()
	dir := project(t, llmBlock(srv, "  timeout = \"500ms\"\n  deadline = \"2s\"\n"))
	start := time.Now()
	r := cli(t, dir, "", "run", "anything")
	took := time.Since(start)
	if r.code != 1 || took > 12*time.Second {
		t.Fatalf("took %s: %+v", took, r)
	}
}

// run --session runs in the daemon's session (exec --session's variables
// are there) after the conversation of the session's earlier runs; a
// fork of it carries both the state and that conversation.
func TestRunSessionAttachesAndRestoresConversation(t *testing.T) {
	srv := llmtest.New(
		llmtest.Reply{Content: "```python\nprint(y * 2)\n```"}, llmtest.Reply{Content: "ten"},
		llmtest.Reply{Content: "```python\nprint(y + 1)\n```"}, llmtest.Reply{Content: "six"},
	)
	defer srv.Close()
	dir := project(t, llmBlock(srv, ""))
	if r := cli(t, dir, "", "exec", "--session", "s2", "-c", "y = 5"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	if r := cli(t, dir, "", "run", "--session", "s2", "double y"); r.code != 0 || strings.TrimSpace(r.stdout) != "ten" {
		t.Fatalf("run in the daemon's session: %+v", r)
	}
	if reqs := srv.Requests(); !strings.Contains(reqs[1].Messages[len(reqs[1].Messages)-1].Content, "10") {
		t.Fatalf("the run did not see exec's variable: %+v", reqs[1].Messages)
	}
	r := cli(t, dir, "", "replay", "fork", "s2", "--step", "2")
	fork := strings.TrimSpace(r.stdout)
	if r.code != 0 || fork == "" {
		t.Fatalf("fork: %+v", r)
	}
	if r := cli(t, dir, "", "run", "--session", fork, "add one"); r.code != 0 || strings.TrimSpace(r.stdout) != "six" {
		t.Fatalf("run in the fork: %+v", r)
	}
	reqs := srv.Requests()
	var roles, contents []string
	for _, m := range reqs[2].Messages {
		roles, contents = append(roles, m.Role), append(contents, m.Content)
	}
	if strings.Join(roles, " ") != "system user assistant user assistant user" || contents[1] != "double y" || contents[4] != "ten" || contents[5] != "add one" {
		t.Fatalf("the fork's run does not continue the conversation: %q", contents)
	}
	if !strings.Contains(reqs[3].Messages[len(reqs[3].Messages)-1].Content, "6") {
		t.Fatalf("the fork lost y: %+v", reqs[3].Messages)
	}
}

// run --resume SESSION --step N restores the sandbox state of step N and
// continues the run that step belongs to with its conversation up to it.
func TestRunResumeFromReplayStep(t *testing.T) {
	r1 := "```python\nx = 41\nprint('x set')\n```"
	srv := llmtest.New(
		llmtest.Reply{Content: r1}, llmtest.Reply{Content: "```python\nx += 1\nprint(x)\n```"}, llmtest.Reply{Content: "x is 42"},
		llmtest.Reply{Content: "```python\nprint(x)\n```"}, llmtest.Reply{Content: "x is 41"},
	)
	defer srv.Close()
	dir := project(t, llmBlock(srv, ""))
	if r := cli(t, dir, "", "run", "--session", "s3", "set x"); r.code != 0 {
		t.Fatalf("first run: %+v", r)
	}
	r := cli(t, dir, "", "run", "--json", "--resume", "s3", "--step", "1")
	if r.code != 0 {
		t.Fatalf("resume: %+v", r)
	}
	_, res := events(t, r.stdout)
	steps := res["steps"].([]any)
	if res["answer"] != "x is 41" || len(steps) != 2 || steps[1].(map[string]any)["stdout"] != "41\n" || !strings.HasPrefix(res["session"].(string), "s3-r1-") {
		t.Fatalf("resumed run %+v", res)
	}
	reqs := srv.Requests()
	var contents []string
	for _, m := range reqs[3].Messages {
		contents = append(contents, m.Content)
	}
	if len(contents) != 4 || contents[1] != "set x" || contents[2] != r1 || !strings.Contains(contents[3], "x set") {
		t.Fatalf("the resumed conversation %q", contents)
	}
}
