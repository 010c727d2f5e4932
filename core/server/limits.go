package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Limits bound what one client can make the server hold: bytes of a body
// and of code, connections, and how long headers and bodies may take.
// Zero fields take the defaults below.
type Limits struct {
	// MaxBody caps a request body (server.max_body).
	MaxBody int64
	// MaxCode caps the code of one execution (server.max_code).
	MaxCode int64
	// MaxConnections caps the connections a TCP server holds at once
	// (server.max_connections); others wait in the kernel's backlog.
	MaxConnections int
	// HeaderTimeout is how long a client may take to send its headers
	// (server.header_timeout).
	HeaderTimeout time.Duration
	// BodyTimeout is how long a client may take to send a body. It covers
	// reading the body only, never the (long-lived) response stream.
	BodyTimeout time.Duration
	// IdleTimeout closes kept-alive connections without requests.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
}

// Defaults of Limits.
const (
	DefaultMaxBody        = 8 << 20
	DefaultMaxCode        = 1 << 20
	DefaultMaxConnections = 64
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultBodyTimeout    = 60 * time.Second
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultMaxHeaderBytes = 64 << 10
)

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxCode <= 0 {
		l.MaxCode = DefaultMaxCode
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = DefaultHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// WithLimits sets the server's limits (zero fields keep the defaults).
func WithLimits(l Limits) Option { return func(s *Server) { s.limits = l.WithDefaults() } }

// NewHTTPServer returns the http.Server that serves h under l: a header
// timeout, an idle timeout and a header size cap. There is deliberately no
// ReadTimeout or WriteTimeout: execution streams are long-lived responses,
// and net/http cancels a request's context when a connection read deadline
// passes; bodies get their own deadline while they are read (see readBody).
func NewHTTPServer(h http.Handler, l Limits, logger hclog.Logger) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// formatSize writes n bytes the way runtime.hcl takes sizes.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
