package host

import (
	"github.com/hashicorp/go-plugin"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/internal/wire"
)

// Client is the core's side of a plugin: it implements sdk.Backend,
// sdk.Recoverer and sdk.SnapshotDeleter over gRPC, and serves the Host
// service to the plugin for each session.
type Client = wire.Client

// Handshake is the go-plugin handshake every plugin and the core share.
// The cookie only keeps a plugin binary from being run by mistake as a
// normal program; it is not a security measure.
var Handshake = wire.Handshake

// VersionedPlugins is the plugin set per protocol version the core speaks,
// for plugin.ClientConfig.VersionedPlugins.
func VersionedPlugins() map[int]plugin.PluginSet { return wire.VersionedPlugins() }

// ServeVersion serves backend speaking only protocol version v, as a plugin
// built against that version of the sdk would: for tests of the core's
// version negotiation.
func ServeVersion(backend sdk.Backend, v int) {
	wire.Serve(backend, wire.ServeConfig{Version: v})
}
