package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
)

func TestGuardHostAndOrigin(t *testing.T) {
	g, err := NewGuard("127.0.0.1:7878", []string{"api.example", "proxy.example:8443"}, []string{"https://app.example", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host   string
		header map[string]string
		ok     bool
	}{
		{"127.0.0.1:7878", nil, true},
		{"localhost:7878", nil, true},
		{"LocalHost.:7878", nil, true},
		{"[::1]:7878", nil, true},
		{"api.example", nil, true},
		{"api.example:9999", nil, true},
		{"proxy.example:8443", nil, true},
		{"proxy.example:7878", nil, false},
		{"rebind.attacker.example:7878", nil, false},
		{"localhost:7879", nil, false},
		{"127.0.0.1", nil, false},
		{"10.0.0.1:7878", nil, false},
		{"", nil, false},
		{"127.0.0.1:7878", map[string]string{"Origin": "http://127.0.0.1:7878"}, true},
		{"localhost:7878", map[string]string{"Origin": "http://localhost:7878", "Sec-Fetch-Site": "same-origin"}, true},
		{"localhost:7878", map[string]string{"Origin": "http://127.0.0.1:7878"}, false},
		{"127.0.0.1:7878", map[string]string{"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}, true},
		{"127.0.0.1:7878", map[string]string{"Origin": "https://app.example:443"}, true},
		{"127.0.0.1:7878", map[string]string{"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}, true},
		{"127.0.0.1:7878", map[string]string{"Origin": "http://app.example"}, false},
		{"127.0.0.1:7878", map[string]string{"Origin": "https://evil.example"}, false},
		{"127.0.0.1:7878", map[string]string{"Origin": "null"}, false},
		{"127.0.0.1:7878", map[string]string{"Origin": ""}, false},
		{"127.0.0.1:7878", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"127.0.0.1:7878", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"127.0.0.1:7878", map[string]string{"Sec-Fetch-Site": "none"}, true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "http://x/v1/health", nil)
		r.Host = c.host
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		err := g.Check(r)
		if (err == nil) != c.ok {
			t.Errorf("Host %q %v: %v; want ok=%v", c.host, c.header, err, c.ok)
		}
		if err != nil && statusFor(err) != http.StatusForbidden {
			t.Errorf("Host %q %v: status %d; want 403", c.host, c.header, statusFor(err))
		}
	}
}

func TestGuardAnyAddress(t *testing.T) {
	g, err := NewGuard("0.0.0.0:7878", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, ok := range map[string]bool{"192.0.2.7:7878": true, "[2001:db8::1]:7878": true, "localhost:7878": true, "myhost.example:7878": false, "192.0.2.7:80": false} {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host = host
		if err := g.Check(r); (err == nil) != ok {
			t.Errorf("Host %q: %v; want ok=%v", host, err, ok)
		}
	}
}

func TestNewGuardRefusesBadEntries(t *testing.T) {
	if _, err := NewGuard("127.0.0.1:1", []string{"http://x.example"}, nil); err == nil {
		t.Error("a host with a scheme was accepted")
	}
	for _, o := range []string{"*", "app.example", "https://app.example/path", "ftp://x"} {
		if _, err := NewGuard("127.0.0.1:1", nil, []string{o}); err == nil {
			t.Errorf("origin %q was accepted", o)
		}
	}
}

func TestJSONBodiesOnly(t *testing.T) {
	g := NewSocketGuard()
	for ct, ok := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"": false, "text/plain": false, "application/x-www-form-urlencoded": false, "multipart/form-data; boundary=x": false, "application/json-seq": false,
	} {
		r := httptest.NewRequest("POST", "/v1/execute", strings.NewReader(`{"code":"1"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		err := g.Check(r)
		if (err == nil) != ok || (err != nil && statusFor(err) != http.StatusUnsupportedMediaType) {
			t.Errorf("Content-Type %q: %v (status %d); want ok=%v, else 415", ct, err, statusFor(err), ok)
		}
	}
}

// The daemon's socket (the default guard) refuses anything a browser
// sent, and challenges a missing token with WWW-Authenticate when one is set.
func TestSocketServerRefusesBrowsers(t *testing.T) {
	m := session.New(&config.Config{}, nil, nil, nil)
	srv := New(m)
	for _, h := range []map[string]string{{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/shutdown", strings.NewReader("{}"))
		r.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			r.Header.Set(k, v)
		}
		srv.ServeHTTP(rec, r)
		var e APIError
		if rec.Code != http.StatusForbidden || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%v: %d %s; want 403 with a JSON error", h, rec.Code, rec.Body)
		}
	}
	select {
	case <-srv.Done():
		t.Fatal("a refused request shut the server down")
	default:
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/health", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("plain client: %d %s", rec.Code, rec.Body)
	}

	authed := New(m, WithToken("0123456789abcdef"))
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, "bearer 0123456789abcdef": 200, "BEARER  0123456789abcdef": 200, "Basic 0123456789abcdef": 401} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/health", nil)
		r.Header.Set("Authorization", auth)
		authed.ServeHTTP(rec, r)
		if rec.Code != want || (want == 401 && rec.Header().Get("WWW-Authenticate") != Challenge) {
			t.Errorf("%q: %d %q; want %d", auth, rec.Code, rec.Header().Get("WWW-Authenticate"), want)
		}
	}
}

// An allowed origin gets CORS headers and its preflight answered without
// a token; any other origin gets neither.
func TestGuardCORSForAllowedOrigins(t *testing.T) {
	g, err := NewGuard("127.0.0.1:7878", nil, []string{"https://app.example"})
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	h := g.Wrap(RequireToken("0123456789abcdef", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached = true })), hclog.NewNullLogger())
	pre := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("OPTIONS", "/v1/execute", nil)
		r.Host = "127.0.0.1:7878"
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	rec := pre("https://app.example")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") || reached {
		t.Fatalf("preflight of an allowed origin: %d %v", rec.Code, rec.Header())
	}
	rec = pre("https://evil.example")
	if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" || reached {
		t.Fatalf("preflight of another origin: %d %v", rec.Code, rec.Header())
	}
}
