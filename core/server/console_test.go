package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/console"
	"github.com/mcpruntime/mcpruntime/core/session"
)

const testToken = "0123456789abcdef-console"

// consoleServer is a server with the console and a token, listening on
// loopback the way `serve` does.
func consoleServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	addr := ts.Listener.Addr().String()
	g, err := NewGuard(addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(session.New(&config.Config{}, nil, nil, nil), WithToken(testToken), WithGuard(g), WithConsole(console.Handler()))
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, "http://" + addr
}

func send(t *testing.T, method, url string, body string, header map[string]string) *http.Response {
	t.Helper()
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The console's files are public (a browser off loopback must get the
// login form) and carry a CSP without inline script; the API is not.
func TestConsoleFilesPublicAPIAuthenticated(t *testing.T) {
	_, base := consoleServer(t)
	for _, p := range []string{"/", "/console/app.js", "/console/app.css"} {
		resp := send(t, "GET", base+p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s without a token: %s", p, resp.Status)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("GET %s: CSP %q", p, csp)
		}
	}
	if resp := send(t, "GET", base+"/console/../../etc/passwd", "", nil); resp.StatusCode == http.StatusOK {
		t.Fatalf("path escape: %s", resp.Status)
	}
	for _, p := range []string{"/v1/sessions", "/v1/login"} {
		if resp := send(t, "GET", base+p, "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a token: %s", p, resp.Status)
		}
	}
	if resp := send(t, "GET", base+"/v1/sessions", "", map[string]string{"Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sessions with the token: %s", resp.Status)
	}
}

// POST /v1/login sets an HttpOnly, SameSite=Strict cookie that stands for
// the token (without being it); a wrong token sets none; logout clears it.
func TestConsoleLoginCookie(t *testing.T) {
	_, base := consoleServer(t)
	if resp := send(t, "POST", base+"/v1/login", `{"token":"wrong-token-wrong-token"}`, nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %s %v", resp.Status, resp.Cookies())
	}
	resp := send(t, "POST", base+"/v1/login", `{"token":"`+testToken+`"}`, nil)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %s %v", resp.Status, resp.Cookies())
	}
	c := resp.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Value == testToken || strings.Contains(c.Value, testToken) {
		t.Fatalf("cookie: %+v", c)
	}
	cookie := map[string]string{"Cookie": CookieName + "=" + c.Value}
	if resp := send(t, "GET", base+"/v1/sessions", "", cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the cookie: %s", resp.Status)
	}
	if resp := send(t, "GET", base+"/v1/sessions", "", map[string]string{"Cookie": CookieName + "=" + cookieValue("another-token-xyz")}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with a forged cookie: %s", resp.Status)
	}
	resp = send(t, "POST", base+"/v1/logout", `{}`, cookie)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %s %v", resp.Status, resp.Cookies())
	}
}

// What curl sees when it pretends to be another site's page: the
// console, its files, the login and the API all refuse, with or without
// the cookie, before anything runs.
func TestConsoleCrossOriginRefused(t *testing.T) {
	_, base := consoleServer(t)
	resp := send(t, "POST", base+"/v1/login", `{"token":"`+testToken+`"}`, nil)
	cookie := CookieName + "=" + resp.Cookies()[0].Value
	attacks := []map[string]string{
		{"Origin": "http://evil.example"},
		{"Origin": "null"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Cookie": cookie},
	}
	reqs := []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/console/app.js", ""}, {"POST", "/v1/login", `{"token":"` + testToken + `"}`},
		{"GET", "/v1/sessions", ""}, {"POST", "/v1/sessions", `{}`}, {"GET", "/v1/openapi.json", ""},
	}
	for _, h := range attacks {
		for _, r := range reqs {
			resp := send(t, r.method, base+r.path, r.body, h)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" || len(resp.Cookies()) != 0 {
				t.Errorf("%s %s with %v: %s (ACAO %q)", r.method, r.path, h, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	}
	// A DNS-rebinding page names another host.
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "rebind.attacker.example:" + strings.Split(base, ":")[2]
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden {
		t.Fatalf("rebinding Host: %s", r2.Status)
	}
	// The console's own page (same origin) is served.
	if resp := send(t, "GET", base+"/", "", map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("same origin: %s", resp.Status)
	}
}
