package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The HTTP server's guard, attacked through the real binary: web pages
// (cross-origin requests, DNS rebinding), token mistakes and bodies that
// are not the JSON the API takes.

// served is a running `mcpruntime serve`.
type served struct {
	dir, addr string
	cmd       *exec.Cmd
}

// serve starts `mcpruntime serve` on a free loopback port with
// serverExtra appended inside the server block and blocks after it, and
// waits until it answers.
func serve(t *testing.T, serverExtra string, blocks ...string) *served {
	t.Helper()
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n%s}\n%s", addr, serverExtra, strings.Join(blocks, "")))
	cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &served{dir: dir, addr: addr, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/health", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testToken is long enough for server.token.
const testToken = "0123456789abcdef-test"

// req sends one request; header values override the defaults
// (Content-Type: application/json for bodies); "Host" sets the Host header.
func (s *served) req(t *testing.T, method, path, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestServeRefusesCrossOriginRequests(t *testing.T) {
	s := serve(t, "")
	write := `{"code":"open('csrf.txt','w').write('x')"}`
	port := s.addr[strings.LastIndex(s.addr, ":")+1:]
	for name, h := range map[string]map[string]string{
		"form post from a page":    {"Origin": "http://evil.example", "Content-Type": "text/plain"},
		"json from a page":         {"Origin": "http://evil.example"},
		"another port on loopback": {"Origin": "http://127.0.0.1:1"},
		"same site, other port":    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
		"opaque origin":            {"Origin": "null"},
		"https of the same host":   {"Origin": "https://" + s.addr},
		"fetch metadata only":      {"Sec-Fetch-Site": "cross-site"},
	} {
		code, _, body := s.req(t, "POST", "/v1/execute", write, h)
		if code != http.StatusForbidden || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s; want 403 with a JSON error", name, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "workspace", "csrf.txt")); err == nil {
		t.Fatal("a cross-origin request ran code: csrf.txt was written")
	}
	// The server's own origin and clients that send no Origin pass.
	for _, h := range []map[string]string{
		{"Origin": "http://" + s.addr, "Sec-Fetch-Site": "same-origin"},
		{"Origin": "http://localhost:" + port, "Host": "localhost:" + port},
		{"Sec-Fetch-Site": "none"},
		nil,
	} {
		if code, _, body := s.req(t, "POST", "/v1/execute", `{"code":"print(1)"}`, h); code != http.StatusOK || !strings.Contains(body, `"result"`) {
			t.Errorf("%v: %d %s; want 200 and a result", h, code, body)
		}
	}
}

func TestServeRefusesForeignHost(t *testing.T) {
	s := serve(t, "")
	port := s.addr[strings.LastIndex(s.addr, ":")+1:]
	for _, host := range []string{"rebind.attacker.example:" + port, "rebind.attacker.example", "127.0.0.1:1", "localhost.evil.example:" + port} {
		code, _, body := s.req(t, "POST", "/v1/shutdown", "{}", map[string]string{"Host": host})
		if code != http.StatusForbidden || !strings.Contains(body, "host") {
			t.Errorf("Host %s: %d %s; want 403 naming the host", host, code, body)
		}
	}
	for _, host := range []string{s.addr, "localhost:" + port, "LOCALHOST:" + port} {
		if code, _, body := s.req(t, "GET", "/v1/health", "", map[string]string{"Host": host}); code != http.StatusOK {
			t.Errorf("Host %s: %d %s", host, code, body)
		}
	}
}

func TestServeAllowedOrigins(t *testing.T) {
	s := serve(t, "  allowed_origins = [\"http://app.example:3000\"]\n  hosts = [\"api.example\"]\n")
	port := s.addr[strings.LastIndex(s.addr, ":")+1:]
	listed := map[string]string{"Origin": "http://app.example:3000", "Sec-Fetch-Site": "cross-site"}
	if code, _, body := s.req(t, "POST", "/v1/execute", `{"code":"print(2)"}`, listed); code != http.StatusOK || !strings.Contains(body, `"2\n"`) {
		t.Fatalf("listed origin: %d %s", code, body)
	}
	if code, _, _ := s.req(t, "POST", "/v1/execute", `{"code":"print(2)"}`, map[string]string{"Origin": "http://app.example:3001"}); code != http.StatusForbidden {
		t.Fatalf("unlisted origin: %d", code)
	}
	if code, _, body := s.req(t, "GET", "/v1/health", "", map[string]string{"Host": "api.example:" + port}); code != http.StatusOK {
		t.Fatalf("listed host: %d %s", code, body)
	}
}

func TestServeTokens(t *testing.T) {
	for _, tok := range []string{`" "`, `"      "`, `"short"`, `"fifteen-chars15"`, `"0123456789 abcdef"`} {
		dir := project(t, "server {\n  listen = \"127.0.0.1:0\"\n  token = "+tok+"\n}\n")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mcpruntime"), "serve")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "runtime.hcl:7:") || !strings.Contains(string(out), "token") {
			t.Errorf("token %s: %v, %s; want exit 2 and runtime.hcl:7:COL", tok, err, out)
		}
	}
	s := serve(t, "  token = \""+testToken+"\"\n")
	for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken, "BEARER " + testToken} {
		if code, _, body := s.req(t, "GET", "/v1/health", "", map[string]string{"Authorization": auth}); code != http.StatusOK {
			t.Errorf("%q: %d %s", auth, code, body)
		}
	}
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic " + testToken, "Bearer " + testToken + "x", "Bearer " + testToken[:10]} {
		code, h, _ := s.req(t, "GET", "/v1/health", "", map[string]string{"Authorization": auth})
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Bearer realm="mcpruntime"` {
			t.Errorf("%q: %d, WWW-Authenticate %q", auth, code, h.Get("WWW-Authenticate"))
		}
	}
}

func TestServeJSONBodiesOnly(t *testing.T) {
	s := serve(t, "")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "none"} {
		h := map[string]string{"Content-Type": ct}
		if ct == "none" {
			h["Content-Type"] = ""
		}
		if code, _, body := s.req(t, "POST", "/v1/execute", `{"code":"open('ct.txt','w').write('x')"}`, h); code != http.StatusUnsupportedMediaType || !strings.Contains(body, "application/json") {
			t.Errorf("Content-Type %q: %d %s; want 415", ct, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "workspace", "ct.txt")); err == nil {
		t.Fatal("a request that is not JSON ran code")
	}
	if code, _, body := s.req(t, "POST", "/v1/execute", `{"code":"print(3)"}`, map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}); code != http.StatusOK {
		t.Fatalf("json with charset: %d %s", code, body)
	}
}

func TestServeStrictJSON(t *testing.T) {
	s := serve(t, "", "llm {\n  base_url = \"http://127.0.0.1:1\"\n}\n")
	for _, c := range []struct{ path, body, want string }{
		{"/v1/execute", `{"code":"print(1)","cod":"x"}`, `"cod"`},
		{"/v1/execute", `{"code":"print(1)","Code":"x"}`, `"Code"`},
		{"/v1/execute", `{"code":"print(1)"} {"code":"x"}`, "after"},
		{"/v1/execute", `{"code":"print(1)"}garbage`, "after"},
		{"/v1/execute", `{"code":null}`, `"code"`},
		{"/v1/execute", `{}`, `"code"`},
		{"/v1/execute", `{"code":1}`, `"code"`},
		{"/v1/execute", `{"code":"print(1)","timeout_ms":"5"}`, `"timeout_ms"`},
		{"/v1/execute", `{"code":"print(1)","code":"print(2)"}`, `"code"`},
		{"/v1/execute", "{\"code\":\"print('\xff')\"}", "UTF-8"},
		{"/v1/execute", `["print(1)"]`, "object"},
		{"/v1/execute", `null`, "object"},
		{"/v1/sessions", `{"id":"a","bogus":true}`, `"bogus"`},
		{"/v1/sessions", `{"id":7}`, `"id"`},
		{"/v1/runs", `{"task":"x","extra":1}`, `"extra"`},
	} {
		code, _, body := s.req(t, "POST", c.path, c.body, nil)
		var e struct{ Error string }
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s; want 400 with an error naming %s", c.path, c.body, code, body, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "workspace", "x")); err == nil {
		t.Fatal("unexpected file")
	}
}
