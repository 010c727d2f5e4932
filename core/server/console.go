package server

import (
	"net/http"
	"strings"
)

// ConsolePrefix is where the console's static files (scripts, styles)
// live; the console's page itself is served at /.
const ConsolePrefix = "/console/"

// WithConsole serves the web console h at / and under /console/. Its
// files are public (they hold no data: the page asks the API for
// everything, with the bearer token or the login cookie); every API
// route keeps its authentication.
func WithConsole(h http.Handler) Option {
	return func(s *Server) {
		s.console = true
		s.Handle("GET /{$}", h.ServeHTTP)
		s.Handle("GET "+ConsolePrefix, h.ServeHTTP)
	}
}

// public reports whether r may be served without credentials: the
// console's files (so a browser off loopback can show the login form),
// the login itself, and the OpenAPI document (a description, no data).
func (s *Server) public(r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == OpenAPIPath:
		return true
	case r.Method == http.MethodPost && (r.URL.Path == LoginPath || r.URL.Path == LogoutPath):
		return s.console
	case r.Method == http.MethodGet && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, ConsolePrefix)):
		return s.console
	}
	return false
}
