package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplayResumeFork(t *testing.T) {
	dir := project(t, "")
	ws := filepath.Join(dir, "workspace")
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "var = 41\nopen('data.txt','w').write('step one')"); r.code != 0 {
		t.Fatalf("step 1: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "var = 99\nopen('data.txt','w').write('step two')\nopen('extra.txt','w').write('x')"); r.code != 0 {
		t.Fatalf("step 2: %+v", r)
	}

	r := cli(t, dir, "", "replay", "list", "--json")
	var list []struct {
		Session string
		Steps   int
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("replay list --json: %v %+v", err, r)
	}
	found := false
	for _, s := range list {
		if s.Session == "s1" {
			found = s.Steps == 2
		}
	}
	if !found {
		t.Fatalf("s1 with 2 steps not listed: %s", r.stdout)
	}

	r = cli(t, dir, "", "replay", "show", "s1", "--step", "1", "--json")
	var step struct {
		Step              int
		Code              string
		OK                bool
		WorkspaceSnapshot string `json:"workspace_snapshot"`
		State             string
		StateInfo         *struct {
			Saved []string
			Error string
		} `json:"state_info"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &step); err != nil || step.Step != 1 || !step.OK || step.WorkspaceSnapshot == "" || !strings.Contains(step.Code, "var = 41") {
		t.Fatalf("show --step 1: %v %+v", err, r)
	}
	// the state is saved just after the step; give it a moment
	for i := 0; i < 50 && (step.StateInfo == nil); i++ {
		time.Sleep(100 * time.Millisecond)
		json.Unmarshal([]byte(cli(t, dir, "", "replay", "show", "s1", "--step", "1", "--json").stdout), &step)
	}
	if step.StateInfo == nil || step.StateInfo.Error != "" || !contains(step.StateInfo.Saved, "var") {
		t.Fatalf("state of step 1: %+v", step.StateInfo)
	}

	r = cli(t, dir, "", "replay", "resume", "s1", "--step", "1")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("resume: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", id, "-c", "print(var)"); r.code != 0 || r.stdout != "41\n" {
		t.Fatalf("exec in resumed session: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "data.txt")); err != nil || string(b) != "step one" {
		t.Fatalf("data.txt after resume: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "extra.txt")); err == nil {
		t.Fatal("extra.txt (created in step 2) survived the resume to step 1")
	}
	// resume ended the original session
	if r := cli(t, dir, "", "exec", "--session", "s1", "-c", "print('var' in globals())"); r.stdout != "False\n" {
		t.Fatalf("original after resume: %+v", r)
	}
	// the resumed session's own log continues at step 1
	r = cli(t, dir, "", "replay", "show", id, "--json")
	var shown struct {
		Steps []struct {
			Step        int
			ResumedFrom *struct{ Session string } `json:"resumed_from"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown.Steps) != 2 || shown.Steps[0].ResumedFrom == nil || shown.Steps[1].Step != 1 {
		t.Fatalf("resumed session's log: %v %s", err, r.stdout)
	}

	// fork from step 2 leaves the forked-from session alive
	if r := cli(t, dir, "", "exec", "--session", id, "-c", "keep = 'me'"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	r = cli(t, dir, "", "replay", "fork", "s1", "--step", "2")
	fid := strings.TrimSpace(r.stdout)
	if r.code != 0 || fid == "" {
		t.Fatalf("fork: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", fid, "-c", "print(var)"); r.stdout != "99\n" {
		t.Fatalf("forked session: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "data.txt")); string(b) != "step two" {
		t.Fatalf("data.txt after fork from step 2: %q", b)
	}
	if r := cli(t, dir, "", "exec", "--session", id, "-c", "print(keep)"); r.stdout != "me\n" {
		t.Fatalf("fork touched another session: %+v", r)
	}

	// bad input
	if r := cli(t, dir, "", "replay", "resume", "s1"); r.code != 2 {
		t.Fatalf("resume without --step: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "resume", "s1", "--step", "7"); r.code == 0 || !strings.Contains(r.stderr, "no such step") {
		t.Fatalf("resume missing step: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "show", "nope"); r.code == 0 {
		t.Fatalf("show missing session: %+v", r)
	}
}

func TestReplayTruncatedLog(t *testing.T) {
	dir := project(t, "")
	if r := cli(t, dir, "", "exec", "--session", "t1", "-c", "print(1)"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	path := filepath.Join(dir, "workspace", ".replay", "t1.jsonl")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"step":2,"code":"prin`)
	f.Close()
	r := cli(t, dir, "", "replay", "show", "t1")
	if r.code != 0 || !strings.Contains(r.stdout, "step 1") || !strings.Contains(r.stderr, "truncated") {
		t.Fatalf("show with truncated tail: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "show", "t1", "--json"); r.code != 0 || !json.Valid([]byte(r.stdout)) {
		t.Fatalf("show --json with truncated tail: %+v", r)
	}
	if r := cli(t, dir, "", "replay", "list"); r.code != 0 || !strings.Contains(r.stdout, "t1") {
		t.Fatalf("list with truncated tail: %+v", r)
	}
	// recording goes on after the broken line
	if r := cli(t, dir, "", "exec", "--session", "t1", "-c", "print(2)"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	r = cli(t, dir, "", "replay", "show", "t1", "--step", "2", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `print(2)`) {
		t.Fatalf("step after the broken line: %+v", r)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
