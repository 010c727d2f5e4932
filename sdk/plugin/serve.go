// Package plugin is what a backend's main function calls: Serve runs an
// sdk.Backend as an mcpruntime plugin (go-plugin over gRPC, the Host
// broker, the message limits), so a backend never touches gRPC.
package plugin

import (
	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/internal/wire"
)

// Option configures Serve.
type Option func(*wire.ServeConfig)

// WithLogger sets the plugin's logger (default: JSON to stderr, which the
// core re-emits under the plugin's name).
func WithLogger(l hclog.Logger) Option { return func(c *wire.ServeConfig) { c.Logger = l } }

// Serve runs backend as a plugin until the core tells it to stop (or the
// process gets SIGTERM), then calls its Close method if it has one.
// Nothing may be written to stdout before Serve: the core reads the
// handshake from there.
func Serve(backend sdk.Backend, opts ...Option) {
	var cfg wire.ServeConfig
	for _, o := range opts {
		o(&cfg)
	}
	wire.Serve(backend, cfg)
}
