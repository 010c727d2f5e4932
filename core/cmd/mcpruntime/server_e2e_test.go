package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHTTPServer(t *testing.T) {
	llm := llmtest.New(llmtest.Reply{Content: "```python\nprint(6*7)\n```"}, llmtest.Reply{Content: "42"})
	defer llm.Close()
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n  token = \"sekrit-sekrit-sekrit\"\n}\nllm {\n  base_url = %q\n}\n", addr, llm.BaseURL()))
	srv := exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
	srv.Dir = dir
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	base := "http://" + addr
	do := func(method, path, token string, body any) *http.Response {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; ; i++ {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				return resp
			}
			if i > 100 {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			req, _ = http.NewRequest(method, base+path, bytes.NewReader(b))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if resp := do("GET", "/v1/health", "wrong", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %s", resp.Status)
	}

	// Streaming execution as server-sent events: output comes before the result.
	resp := do("POST", "/v1/execute/stream", "sekrit-sekrit-sekrit", map[string]any{"code": "print('a')\nprint('b')", "session": "web", "create": true})
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, ev)
		}
	}
	resp.Body.Close()
	if len(events) < 2 || events[0] != "stdout" || events[len(events)-1] != "result" {
		t.Fatalf("SSE events %v", events)
	}
	// The session persists across requests.
	resp = do("POST", "/v1/sessions/web/execute", "sekrit-sekrit-sekrit", map[string]any{"code": "x = 5"})
	resp.Body.Close()
	resp = do("POST", "/v1/sessions/web/execute", "sekrit-sekrit-sekrit", map[string]any{"code": "print(x * 2)"})
	var out strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var e struct{ Type, Data string }
		if dec.Decode(&e) != nil {
			break
		}
		if e.Type == "stdout" {
			out.WriteString(e.Data)
		}
	}
	resp.Body.Close()
	if out.String() != "10\n" {
		t.Fatalf("session state over HTTP: %q", out.String())
	}

	// An asynchronous agent run.
	resp = do("POST", "/v1/runs", "sekrit-sekrit-sekrit", map[string]any{"task": "six times seven"})
	var run struct{ ID, Status string }
	json.NewDecoder(resp.Body).Decode(&run)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || run.ID == "" {
		t.Fatalf("start run: %s %+v", resp.Status, run)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp = do("GET", "/v1/runs/"+run.ID, "sekrit-sekrit-sekrit", nil)
		var got struct {
			Status string
			Result struct{ Answer string }
		}
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Status == "done" {
			if got.Result.Answer != "42" {
				t.Fatalf("run answer %+v", got)
			}
			break
		}
		if got.Status != "running" || time.Now().After(deadline) {
			t.Fatalf("run %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
