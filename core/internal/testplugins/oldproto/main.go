// Command oldproto speaks a plugin protocol version the core does not.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func main() {
	hs := sdk.Handshake
	hs.ProtocolVersion = 99
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{99: {sdk.PluginName: &sdk.GRPCPlugin{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
