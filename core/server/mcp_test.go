package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMCPRouteGuarded: /mcp takes the guard and the token of the API: a
// web page's Origin, a DNS-rebinding Host, a form body and a missing
// token never reach the MCP handler.
func TestMCPRouteGuarded(t *testing.T) {
	g, err := NewGuard("127.0.0.1:7878", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	reached := 0
	mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusOK)
	})
	srv := New(nil, WithGuard(g), WithToken("0123456789abcdef"), WithMCP(mcp))
	for _, tc := range []struct {
		name, host, origin, token, ctype string
		want                             int
	}{
		{"allowed", "127.0.0.1:7878", "", "0123456789abcdef", "application/json", http.StatusOK},
		{"same origin", "localhost:7878", "http://localhost:7878", "0123456789abcdef", "application/json", http.StatusOK},
		{"no token", "127.0.0.1:7878", "", "", "application/json", http.StatusUnauthorized},
		{"web page", "127.0.0.1:7878", "https://evil.example", "0123456789abcdef", "application/json", http.StatusForbidden},
		{"rebinding", "evil.example:7878", "", "0123456789abcdef", "application/json", http.StatusForbidden},
		{"form", "127.0.0.1:7878", "", "0123456789abcdef", "text/plain", http.StatusUnsupportedMediaType},
	} {
		reached = 0
		r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		r.Host = tc.host
		r.Header.Set("Content-Type", tc.ctype)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != tc.want || (reached == 1) != (tc.want == http.StatusOK) {
			t.Errorf("%s: %d (handler reached %d times), want %d", tc.name, w.Code, reached, tc.want)
		}
	}
}
