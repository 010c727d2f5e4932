package sdk

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MaxMessageBytes bounds one gRPC message between core and plugin (code sent
// for execution, one output chunk). gRPC's 4 MiB default is too small for
// agents that paste data into code.
const MaxMessageBytes = 64 << 20

// ProtocolVersion is the version of the plugin protocol this sdk speaks:
// a plugin built with it serves this version. It changes only when the
// Sandbox or Host service changes. Version 2 added RecoverSessions and
// DeleteSnapshot.
const ProtocolVersion = 2

// MinProtocolVersion is the oldest plugin protocol the core still speaks.
// A version-1 plugin works as before; the calls version 2 added report
// ErrNotSupported without reaching it.
const MinProtocolVersion = 1

// ProtocolVersions lists the plugin protocol versions the core accepts,
// oldest first.
func ProtocolVersions() []int {
	out := make([]int, 0, ProtocolVersion-MinProtocolVersion+1)
	for v := MinProtocolVersion; v <= ProtocolVersion; v++ {
		out = append(out, v)
	}
	return out
}

// PluginName is the key of the sandbox service in go-plugin's plugin map.
const PluginName = "sandbox"

// BinaryPrefix is how plugin executables are named: mcpruntime-plugin-NAME.
const BinaryPrefix = "mcpruntime-plugin-"

// Handshake is shared by the core and every plugin. The cookie only keeps a
// plugin binary from being run by mistake as a normal program; it is not a
// security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "MCPRUNTIME_PLUGIN_COOKIE",
	MagicCookieValue: "7f1c4a2e-sandbox-backend",
}

// GRPCPlugin is the go-plugin glue for the Sandbox service. The core uses it
// with a nil Backend (client side); Serve uses it with the plugin's Backend.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Backend Backend
	Logger  hclog.Logger

	// protocol is the version this plugin set was negotiated at (client
	// side); 0 means ProtocolVersion.
	protocol int
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
	v := p.protocol
	if v == 0 {
		v = ProtocolVersion
	}
	return newClient(conn, broker, v), nil
}

// VersionedPlugins is the plugin set per protocol version the core speaks
// (every one of ProtocolVersions), for plugin.ClientConfig.VersionedPlugins.
// go-plugin sends the plugin the list; the plugin picks the newest version
// it serves, and the *Client dispensed for it knows that version.
func VersionedPlugins() map[int]plugin.PluginSet {
	out := map[int]plugin.PluginSet{}
	for _, v := range ProtocolVersions() {
		out[v] = plugin.PluginSet{PluginName: &GRPCPlugin{protocol: v}}
	}
	return out
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logger     hclog.Logger
	test       *plugin.ServeTestConfig
	closeAfter time.Duration
}

// WithLogger sets the plugin's logger (default: JSON to stderr, which the
// core re-emits under the plugin's name).
func WithLogger(l hclog.Logger) ServeOption { return func(c *serveConfig) { c.logger = l } }

// WithTestConfig serves in-process for tests (see sandboxtest).
func WithTestConfig(tc *plugin.ServeTestConfig) ServeOption {
	return func(c *serveConfig) { c.test = tc }
}

// Serve runs backend as a plugin until the core tells it to stop, then
// calls its Close method if it has one. Nothing may be written to stdout
// before Serve: go-plugin reads the handshake from there.
func Serve(backend Backend, opts ...ServeOption) {
	cfg := &serveConfig{closeAfter: 30 * time.Second}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.logger == nil {
		cfg.logger = hclog.New(&hclog.LoggerOptions{
			Level: hclog.LevelFromString(envOr("MCPRUNTIME_PLUGIN_LOG_LEVEL", "info")), Output: os.Stderr, JSONFormat: true,
		})
	}
	closeBackend := func() {
		if c, ok := backend.(Closer); ok {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.closeAfter)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				cfg.logger.Error("close backend", "error", err)
			}
		}
	}
	if cfg.test == nil {
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
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Backend: backend, Logger: cfg.logger}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
		Logger: cfg.logger,
		Test:   cfg.test,
	})
	closeBackend()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
