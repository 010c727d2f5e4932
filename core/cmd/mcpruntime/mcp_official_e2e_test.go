package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// mcpSDK is the official TypeScript SDK installed by `make npm-deps`;
// without it (and node) the tests skip, except under CI where a missing
// peer fails.
func mcpSDK(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../deps/npm/node_modules/@modelcontextprotocol/sdk")
	if err != nil {
		t.Fatal(err)
	}
	_, serr := os.Stat(filepath.Join(dir, "package.json"))
	_, nerr := exec.LookPath("node")
	if serr != nil || nerr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the TypeScript MCP SDK or node is missing (make npm-deps): %v %v", serr, nerr)
		}
		t.Skipf("the TypeScript MCP SDK or node is missing (make npm-deps): %v %v", serr, nerr)
	}
	return dir
}

// tsPeer says how the TypeScript client reaches mcpruntime.
type tsPeer struct {
	command []string // stdio
	url     string   // streamable HTTP
	token   string
}

func stdioPeer(dir string, extra ...string) tsPeer {
	return tsPeer{command: append([]string{filepath.Join(binDir, "mcpruntime"), "mcp", "--config", filepath.Join(dir, "runtime.hcl")}, extra...)}
}

// tsClient runs core/mcpserve/testdata/client.mjs SCENARIO against peer
// and returns what it printed.
func tsClient(t *testing.T, peer tsPeer, scenario string, args map[string]any) map[string]any {
	t.Helper()
	sdkDir := mcpSDK(t)
	a, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "../../mcpserve/testdata/client.mjs", scenario)
	cmd.Env = append(os.Environ(), "MCP_SDK="+sdkDir, "MCP_ARGS="+string(a))
	if peer.command != nil {
		c, _ := json.Marshal(peer.command)
		cmd.Env = append(cmd.Env, "MCP_COMMAND="+string(c))
	} else {
		cmd.Env = append(cmd.Env, "MCP_URL="+peer.url, "MCP_TOKEN="+peer.token)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node client %s: %v\nstdout: %s\nstderr: %s", scenario, err, out.String(), errb.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("node client %s printed %q: %v\nstderr: %s", scenario, out.String(), err, errb.String())
	}
	if e, ok := res["error"]; ok {
		t.Fatalf("node client %s: %v\nstderr: %s", scenario, e, errb.String())
	}
	return res
}

const mcpToken = "mcp-test-token-0123456789"

// startServe runs `mcpruntime serve` for dir (whose runtime.hcl sets
// listen = addr and the test token) until the test ends.
func startServe(t *testing.T, dir, addr string) {
	t.Helper()
	srv := exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
	srv.Dir = dir
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	})
	if _, err := server.NewClient("http://"+addr, mcpToken).WaitHealthy(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("serve did not come up: %v", err)
	}
}

func serveProject(t *testing.T, extra string) (dir, addr string) {
	addr = freeAddr(t)
	dir = project(t, fmt.Sprintf("server {\n  listen = %q\n  token = %q\n}\n%s", addr, mcpToken, extra))
	startServe(t, dir, addr)
	return dir, addr
}

func get(m any, path ...string) any {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// checkTools asserts the tool list's output schemas and annotations.
func checkTools(t *testing.T, res map[string]any) {
	t.Helper()
	want := map[string]map[string]bool{
		"execute_python": {"readOnlyHint": false, "destructiveHint": false, "openWorldHint": false},
		"list_sessions":  {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false},
		"close_session":  {"readOnlyHint": false, "destructiveHint": true},
		"list_skills":    {"readOnlyHint": true, "destructiveHint": false},
	}
	tools, _ := res["tools"].([]any)
	seen := 0
	for _, raw := range tools {
		tool := raw.(map[string]any)
		hints, ok := want[tool["name"].(string)]
		if !ok {
			continue
		}
		seen++
		if get(tool, "outputSchema", "type") != "object" || get(tool, "outputSchema", "properties") == nil {
			t.Errorf("%s: outputSchema %v", tool["name"], tool["outputSchema"])
		}
		for k, v := range hints {
			if get(tool, "annotations", k) != v {
				t.Errorf("%s: %s = %v, want %v", tool["name"], k, get(tool, "annotations", k), v)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("tools: %v", tools)
	}
}

// TestMCPOfficialClientStdio: the official TypeScript client over stdio
// sees output schemas (and validates the structured results against
// them); sessions are the daemon's, shared with `exec --session` both ways.
func TestMCPOfficialClientStdio(t *testing.T) {
	dir := project(t, "")
	peer := stdioPeer(dir)
	res := tsClient(t, peer, "tools", map[string]any{"code": "x = 41\nprint('set')", "session": "shared"})
	checkTools(t, res)
	if get(res, "exec", "stdout") != "set\n" || get(res, "exec", "session") != "shared" {
		t.Fatalf("execute_python: %v", res["exec"])
	}
	if r := cli(t, dir, "", "exec", "--session", "shared", "-c", "print(x + 1)"); r.stdout != "42\n" || r.code != 0 {
		t.Fatalf("exec --session on a session made over MCP: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "fromexec", "-c", "y = 6"); r.code != 0 {
		t.Fatalf("exec --session: %+v", r)
	}
	res = tsClient(t, peer, "exec", map[string]any{"code": "print(y * 7)", "session": "fromexec"})
	if get(res, "exec", "stdout") != "42\n" {
		t.Fatalf("MCP on a session made by exec --session: %v", res)
	}
}

// TestMCPOfficialClientHTTP: the same over streamable HTTP on serve,
// whose sessions the HTTP API shares; /mcp is guarded as /v1 is.
func TestMCPOfficialClientHTTP(t *testing.T) {
	_, addr := serveProject(t, "")
	peer := tsPeer{url: "http://" + addr + "/mcp", token: mcpToken}
	res := tsClient(t, peer, "tools", map[string]any{"code": "x = 41\nprint('set')", "session": "shared"})
	checkTools(t, res)
	if get(res, "exec", "stdout") != "set\n" {
		t.Fatalf("execute_python: %v", res["exec"])
	}
	c := server.NewClient("http://"+addr, mcpToken)
	var out strings.Builder
	r, err := c.Exec(context.Background(), "shared", server.ExecRequest{Code: "print(x + 1)"}, func(e sdk.Event) { out.Write(e.Data) })
	if err != nil || out.String() != "42\n" || r.ExitCode != 0 {
		t.Fatalf("HTTP API on a session made over MCP: %q %+v %v", out.String(), r, err)
	}
	if _, err := c.Exec(context.Background(), "fromapi", server.ExecRequest{Code: "y = 6", Create: true}, func(sdk.Event) {}); err != nil {
		t.Fatal(err)
	}
	if res := tsClient(t, peer, "exec", map[string]any{"code": "print(y * 7)", "session": "fromapi"}); get(res, "exec", "stdout") != "42\n" {
		t.Fatalf("MCP on a session made by the HTTP API: %v", res)
	}

	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, tc := range []struct {
		name, host, origin, token, ctype string
		want                             int
	}{
		{"ok", "", "", mcpToken, "application/json", http.StatusOK},
		{"no token", "", "", "", "application/json", http.StatusUnauthorized},
		{"wrong token", "", "", "wrong-token-wrong-token", "application/json", http.StatusUnauthorized},
		{"web page origin", "", "http://evil.example", mcpToken, "application/json", http.StatusForbidden},
		{"DNS rebinding host", "evil.example:" + addr[strings.LastIndex(addr, ":")+1:], "", mcpToken, "application/json", http.StatusForbidden},
		{"form post", "", "", mcpToken, "text/plain", http.StatusUnsupportedMediaType},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/mcp", strings.NewReader(initBody))
		req.Header.Set("Content-Type", tc.ctype)
		req.Header.Set("Accept", "application/json, text/event-stream")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
		if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate challenge", tc.name)
		}
	}
}

// progressCode prints a line every 100 ms for 2.5 s.
const progressCode = "import time\nfor i in range(25):\n    print('line', i, flush=True)\n    time.sleep(0.1)\n"

// TestMCPProgress: with a progressToken the cell's output arrives live,
// at most 10 notifications a second, and a client that resets its
// timeout on progress outlives a timeout shorter than the cell.
func TestMCPProgress(t *testing.T) {
	dir := project(t, "")
	_, addr := serveProject(t, "")
	for name, peer := range map[string]tsPeer{
		"stdio": stdioPeer(dir),
		"http":  {url: "http://" + addr + "/mcp", token: mcpToken},
	} {
		t.Run(name, func(t *testing.T) {
			res := tsClient(t, peer, "progress", map[string]any{"code": progressCode, "timeout": 1500})
			stdout, _ := get(res, "exec", "stdout").(string)
			if !strings.HasSuffix(stdout, "line 24\n") {
				t.Fatalf("result: %v", res["exec"])
			}
			notes, _ := res["notes"].([]any)
			var live strings.Builder
			var times []float64
			for _, n := range notes {
				live.WriteString(get(n, "message").(string))
				times = append(times, get(n, "t").(float64))
			}
			if live.String() != stdout {
				t.Fatalf("progress messages %q, output %q", live.String(), stdout)
			}
			if len(notes) < 5 {
				t.Fatalf("%d progress notifications for a 2.5 s cell printing every 100 ms", len(notes))
			}
			for i := range times {
				// At most 10 a second: any 11 consecutive notifications span
				// at least a second (less a margin for delivery jitter).
				if i >= 10 && times[i]-times[i-10] < 900 {
					t.Fatalf("more than 10 notifications a second: %v", times)
				}
			}
			t.Logf("%d notifications over %.1f s", len(notes), (times[len(times)-1]-times[0])/1000)
		})
	}
}

// TestMCPConcurrentCells: 8 long cells run at once and list_sessions
// answers while they run, without queueing behind them.
func TestMCPConcurrentCells(t *testing.T) {
	dir := project(t, "")
	code := "import time\ntime.sleep(4)\nprint('done')"
	for name, peer := range map[string]tsPeer{
		"stdio daemon": stdioPeer(dir),
		"stdio local":  stdioPeer(dir, "--local"),
	} {
		t.Run(name, func(t *testing.T) {
			res := tsClient(t, peer, "concurrent", map[string]any{"n": 8, "code": code})
			listMs, listAt := res["listMs"].(float64), res["listAt"].(float64)
			first := 1e9
			for _, c := range res["cells"].([]any) {
				if get(c, "ok") != true || get(c, "out") != "done\n" {
					t.Fatalf("cell: %v", c)
				}
				first = min(first, get(c, "at").(float64))
			}
			t.Logf("list_sessions %.0f ms with 8 cells running; 8 cells of 4 s took %.0f ms", listMs, res["totalMs"])
			if f := res["firstListMs"].(float64); f >= 1000 {
				t.Fatalf("list_sessions sent with the 8 cells took %.0f ms", f)
			}
			if listMs >= 1000 || listAt+listMs >= first {
				t.Fatalf("list_sessions took %.0f ms at %.0f ms; the first cell ended at %.0f ms", listMs, listAt, first)
			}
			if total := res["totalMs"].(float64); total >= 8000 {
				t.Fatalf("8 cells of 4 s took %.0f ms: they did not run at once", total)
			}
		})
	}
}

// TestMCPSamplingFallback: without a model, ask_llm asks the MCP client
// through sampling/createMessage.
func TestMCPSamplingFallback(t *testing.T) {
	for _, v := range []string{"OPENAI_BASE_URL", "OPENAI_API_KEY", "MCPRUNTIME_MODEL"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	dir := project(t, "")
	_, addr := serveProject(t, "")
	code := "print(ask_llm('hello', max_tokens=50))"
	for name, peer := range map[string]tsPeer{
		"stdio": stdioPeer(dir),
		"http":  {url: "http://" + addr + "/mcp", token: mcpToken},
	} {
		t.Run(name, func(t *testing.T) {
			res := tsClient(t, peer, "sampling", map[string]any{"code": code})
			if get(res, "exec", "stdout") != "sampled(hello)\n" {
				t.Fatalf("ask_llm: %v", res["exec"])
			}
			sampled, _ := res["sampled"].([]any)
			if len(sampled) != 1 || get(sampled[0], "maxTokens") != float64(50) {
				t.Fatalf("sampling requests: %v", sampled)
			}
		})
	}
	// A client without sampling gets the clear error.
	res := tsClient(t, stdioPeer(dir), "exec", map[string]any{"code": code})
	if !strings.Contains(fmt.Sprint(get(res, "exec", "stderr")), "does not offer sampling") {
		t.Fatalf("ask_llm without sampling: %v", res["exec"])
	}
}

// TestMCPOutputCap: a 5 MB print returns head and tail within the limit,
// the elided middle marked with its size.
func TestMCPOutputCap(t *testing.T) {
	dir := project(t, "mcp_serve {\n  output_limit = \"16KiB\"\n}\n")
	code := "import sys\n_ = sys.stdout.write('h' * 100000 + 'x' * 400000 + 't' * 100000 + '\\nEND\\n')"
	res := tsClient(t, stdioPeer(dir), "exec", map[string]any{"code": code})
	stdout, _ := get(res, "exec", "stdout").(string)
	text, _ := res["text"].(string)
	if len(stdout) > 17<<10 || len(text) > 18<<10 || !strings.HasPrefix(stdout, "hhhh") || !strings.HasSuffix(stdout, "ttt\nEND\n") ||
		!strings.Contains(stdout, "bytes elided (of 600005)") || get(res, "exec", "output_elided").(float64) < 580000 {
		t.Fatalf("capped output: %d bytes, text %d bytes, elided %v: %.200q ... %.200q", len(stdout), len(text), get(res, "exec", "output_elided"), stdout, stdout[max(0, len(stdout)-200):])
	}
}

// TestMCPCancel: a client cancelling a call (notifications/cancelled)
// stops the cell, over the relay too; the session is usable at once.
func TestMCPCancel(t *testing.T) {
	dir := project(t, "")
	res := tsClient(t, stdioPeer(dir), "cancel", map[string]any{"session": "c"})
	if !strings.HasPrefix(fmt.Sprint(res["long"]), "aborted") || get(res, "exec", "stdout") != "after\n" {
		t.Fatalf("cancel: %v", res)
	}
	if ms := res["afterMs"].(float64); ms > 10000 {
		t.Fatalf("the next call in the session took %.0f ms: the cancelled cell kept running", ms)
	}
}

// TestMCPRelayDaemonRestart: `mcpruntime mcp` survives its daemon
// stopping: the next call starts a new one (the client's handshake is
// replayed) and the session comes back from hibernation.
func TestMCPRelayDaemonRestart(t *testing.T) {
	dir := project(t, "")
	stop := []string{filepath.Join(binDir, "mcpruntime"), "--config", filepath.Join(dir, "runtime.hcl"), "daemon", "stop"}
	res := tsClient(t, stdioPeer(dir), "restart", map[string]any{"session": "r", "code": "x = 41", "next": "print(x + 1)", "stop": stop})
	if get(res, "after", "stdout") != "42\n" {
		t.Fatalf("after the daemon restarted: %v", res)
	}
}
