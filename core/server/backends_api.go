package server

import (
	"context"
	"net/http"
)

// Backends reports what `plugins list` and `doctor` do, for
// GET /v1/backends and GET /v1/doctor.
type Backends struct {
	// Plugins lists the plugins with versions and capabilities (quick).
	Plugins func(ctx context.Context) any
	// Doctor runs doctor's checks, code on every backend included (slow).
	Doctor func(ctx context.Context) any
}

// WithBackends serves GET /v1/backends and GET /v1/doctor.
func WithBackends(b Backends) Option {
	return func(s *Server) {
		s.Handle("GET /v1/backends", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, b.Plugins(r.Context()))
		})
		s.Handle("GET /v1/doctor", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, b.Doctor(r.Context()))
		})
	}
}
