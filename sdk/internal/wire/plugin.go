package wire

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Handshake is shared by the core and every plugin. The cookie only keeps a
// plugin binary from being run by mistake as a normal program; it is not a
// security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  sdk.ProtocolVersion,
	MagicCookieKey:   "MCPRUNTIME_PLUGIN_COOKIE",
	MagicCookieValue: "7f1c4a2e-sandbox-backend",
}

// GRPCPlugin is the go-plugin glue for the Sandbox service. The core uses it
// with a nil Backend (client side); Serve uses it with the plugin's Backend.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Backend sdk.Backend
	Logger  hclog.Logger

	// Protocol is the version this plugin set was negotiated at (client
	// side); 0 means sdk.ProtocolVersion.
	Protocol int
}

// GRPCServer registers the Backend's adapter (plugin side).
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	logger := p.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	registerSandbox(s, &grpcServer{impl: p.Backend, broker: broker, logger: logger})
	return nil
}

// GRPCClient returns a *Client (core side).
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	v := p.Protocol
	if v == 0 {
		v = sdk.ProtocolVersion
	}
	return newClient(conn, broker, v), nil
}

// VersionedPlugins is the plugin set per protocol version the core speaks
// (every one of ProtocolVersions), for plugin.ClientConfig.VersionedPlugins.
// go-plugin sends the plugin the list; the plugin picks the newest version
// it serves, and the *Client dispensed for it knows that version.
func VersionedPlugins() map[int]plugin.PluginSet {
	out := map[int]plugin.PluginSet{}
	for _, v := range sdk.ProtocolVersions() {
		out[v] = plugin.PluginSet{sdk.PluginName: &GRPCPlugin{Protocol: v}}
	}
	return out
}

// ServeConfig configures Serve.
type ServeConfig struct {
	// Logger is the plugin's (default: JSON to stderr, which the core
	// re-emits under the plugin's name).
	Logger hclog.Logger
	// Test serves in-process (ServeInProcess).
	Test *plugin.ServeTestConfig
	// Version is the protocol version served (0: sdk.ProtocolVersion);
	// tests of negotiation serve others.
	Version int
	// CloseAfter bounds the backend's Close (default 30s).
	CloseAfter time.Duration
}

// Serve runs backend as a plugin until the core tells it to stop, then
// calls its Close method if it has one. Nothing may be written to stdout
// before Serve: go-plugin reads the handshake from there.
func Serve(backend sdk.Backend, cfg ServeConfig) {
	if cfg.CloseAfter <= 0 {
		cfg.CloseAfter = 30 * time.Second
	}
	if cfg.Version == 0 {
		cfg.Version = sdk.ProtocolVersion
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{
			Level: hclog.LevelFromString(envOr("MCPRUNTIME_PLUGIN_LOG_LEVEL", "info")), Output: os.Stderr, JSONFormat: true,
		})
	}
	closeBackend := func() {
		if c, ok := backend.(sdk.Closer); ok {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.CloseAfter)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				cfg.Logger.Error("close backend", "error", err)
			}
		}
	}
	if cfg.Test == nil {
		// SIGTERM from the core or an operator: clean up what the backend
		// created before going away.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		go func() {
			<-sigs
			closeBackend()
			os.Exit(0)
		}()
	}
	hs := Handshake
	hs.ProtocolVersion = uint(cfg.Version)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		VersionedPlugins: map[int]plugin.PluginSet{
			cfg.Version: {sdk.PluginName: &GRPCPlugin{Backend: backend, Logger: cfg.Logger}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, ServerOptions()...)...)
		},
		Logger: cfg.Logger,
		Test:   cfg.Test,
	})
	closeBackend()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
