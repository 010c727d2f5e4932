package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

// apiRun is what GET /v1/runs/ID answers.
type apiRun struct {
	ID, Status, Error, Session string
	Result                     struct{ Answer string }
	Steps                      []struct {
		Turn          int
		Step          int
		Reply, Stdout string
	}
}

// runsServer is `mcpruntime serve` for the durable-runs tests.
type runsServer struct {
	t    *testing.T
	dir  string
	base string
	cmd  *exec.Cmd
}

func startRunsServer(t *testing.T, dir, addr string) *runsServer {
	t.Helper()
	s := &runsServer{t: t, dir: dir, base: "http://" + addr}
	s.start()
	t.Cleanup(func() {
		if s.cmd != nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	return s
}

func (s *runsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the server the way a crash would.
func (s *runsServer) kill9() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Wait()
	s.cmd = nil
}

func (s *runsServer) do(method, path string, body any, out any) int {
	s.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatalf("%s %s: %s: %v", method, path, resp.Status, err)
		}
	}
	return resp.StatusCode
}

// waitRun polls run id until cond holds (60 s at most).
func (s *runsServer) waitRun(id string, what string, cond func(apiRun) bool) apiRun {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var run apiRun
		s.do("GET", "/v1/runs/"+id, nil, &run)
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("run %s never %s: %+v", id, what, run)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The script of a run that takes four steps. The second reply is delayed
// so that the run is waiting for the model when its server is killed; the
// killed call consumes it.
func durableScript() (first string, script []llmtest.Reply) {
	first = "Step one.\n```python\nprint('step', 1)\n```"
	return first, []llmtest.Reply{
		{Content: first},
		{Content: "never seen", Delay: 5 * time.Minute},
		{Content: "```python\nprint('step', 2)\n```"},
		{Content: "```python\nprint('step', 3)\n```"},
		{Content: "counted to 3"},
	}
}

// crashMidRun starts a run on a fresh server, waits until its first step
// is recorded, kills the server with SIGKILL and returns the run's id.
func crashMidRun(t *testing.T, llm *llmtest.Server) (*runsServer, string) {
	t.Helper()
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n}\nllm {\n  base_url = %q\n}\nagent {\n  max_steps = 5\n}\n", addr, llm.BaseURL()))
	srv := startRunsServer(t, dir, addr)
	var run apiRun
	if code := srv.do("POST", "/v1/runs", map[string]any{"task": "count to 3"}, &run); code != http.StatusAccepted || run.ID == "" {
		t.Fatalf("start run: %d %+v", code, run)
	}
	srv.waitRun(run.ID, "recorded a step", func(r apiRun) bool { return len(r.Steps) >= 1 })
	// The model call after the step has arrived: the run is mid-flight.
	deadline := time.Now().Add(60 * time.Second)
	for len(llm.Requests()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the run never made its second model call")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill9()
	return srv, run.ID
}

func TestRunSurvivesServerKill(t *testing.T) {
	first, script := durableScript()
	llm := llmtest.New(script...)
	defer llm.Close()
	srv, id := crashMidRun(t, llm)
	srv.start()

	var list []apiRun
	if code := srv.do("GET", "/v1/runs", nil, &list); code != http.StatusOK || len(list) != 1 || list[0].ID != id || list[0].Status != "interrupted" {
		t.Fatalf("runs after the restart: %d %+v", code, list)
	}
	var run apiRun
	srv.do("GET", "/v1/runs/"+id, nil, &run)
	if run.Status != "interrupted" || len(run.Steps) != 1 || run.Steps[0].Stdout != "step 1\n" || run.Steps[0].Reply != first || run.Steps[0].Turn != 1 {
		t.Fatalf("interrupted run: %+v", run)
	}
	if code := srv.do("POST", "/v1/runs/"+id+"/resume", map[string]any{}, &run); code != http.StatusAccepted || run.Status != "running" {
		t.Fatalf("resume: %d %+v", code, run)
	}
	run = srv.waitRun(id, "finished", func(r apiRun) bool { return r.Status != "running" })
	if run.Status != "done" || run.Result.Answer != "counted to 3" || len(run.Steps) != 3 || run.Steps[2].Stdout != "step 3\n" || run.Steps[2].Step != 3 {
		t.Fatalf("resumed run: %+v", run)
	}
	// The resumed run's first model call carried the conversation so far.
	reqs := llm.Requests()
	resumed := reqs[2].Messages
	if len(resumed) != 4 || resumed[2].Role != "assistant" || resumed[2].Content != first || !strings.Contains(resumed[3].Content, "step 1\n") {
		t.Fatalf("the resumed run's first request: %+v", resumed)
	}
	if code := srv.do("POST", "/v1/runs/"+id+"/resume", map[string]any{}, nil); code != http.StatusConflict {
		t.Fatalf("resuming a done run: %d", code)
	}
}

// `run --resume` continues, in-process, a run that a killed server left in
// the workspace's state dir.
func TestRunResumeFromCLI(t *testing.T) {
	_, script := durableScript()
	llm := llmtest.New(script...)
	defer llm.Close()
	srv, id := crashMidRun(t, llm)
	r := cli(t, srv.dir, "", "run", "--resume", id)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "counted to 3" {
		t.Fatalf("run --resume: %+v", r)
	}
	if r := cli(t, srv.dir, "", "run", "--resume", id); r.code != 1 || !strings.Contains(r.stderr, "is done") {
		t.Fatalf("resuming a done run: %+v", r)
	}
	if r := cli(t, srv.dir, "", "run", "--resume", "r-unknown"); r.code != 1 || !strings.Contains(r.stderr, "no such run") {
		t.Fatalf("resuming an unknown run: %+v", r)
	}
	srv.start()
	run := srv.waitRun(id, "done", func(r apiRun) bool { return r.Status != "running" })
	if run.Status != "done" || len(run.Steps) != 3 {
		t.Fatalf("the run after the CLI resumed it: %+v", run)
	}
}

// A run started over HTTP in a session with an earlier run continues its
// conversation and its variables.
func TestHTTPRunContinuesTheSessionsConversation(t *testing.T) {
	llm := llmtest.New(
		llmtest.Reply{Content: "```python\nz = 7\nprint('z set')\n```"}, llmtest.Reply{Content: "set"},
		llmtest.Reply{Content: "```python\nprint(z * 6)\n```"}, llmtest.Reply{Content: "42"},
	)
	defer llm.Close()
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n}\nllm {\n  base_url = %q\n}\n", addr, llm.BaseURL()))
	srv := startRunsServer(t, dir, addr)
	for i, task := range []string{"set z", "use z"} {
		var run apiRun
		if code := srv.do("POST", "/v1/runs", map[string]any{"task": task, "session": "shared"}, &run); code != http.StatusAccepted {
			t.Fatalf("start run %d: %d %+v", i, code, run)
		}
		done := srv.waitRun(run.ID, "finished", func(r apiRun) bool { return r.Status == "done" || r.Status == "failed" })
		if done.Status != "done" {
			t.Fatalf("run %d: %+v", i, done)
		}
	}
	reqs := llm.Requests()
	var contents []string
	for _, m := range reqs[2].Messages {
		contents = append(contents, m.Content)
	}
	if len(contents) != 6 || contents[1] != "set z" || contents[4] != "set" || contents[5] != "use z" {
		t.Fatalf("the second run's conversation %q", contents)
	}
	if last := reqs[3].Messages[len(reqs[3].Messages)-1].Content; !strings.Contains(last, "42") {
		t.Fatalf("the second run lost z: %q", last)
	}
}
