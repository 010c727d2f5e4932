package host

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/internal/wire"
)

// ServeInProcess serves backend inside the calling process, exactly as
// plugin.Serve does in a plugin process (the same gRPC adapters, message limits
// and Host broker), and returns a Plugin connected to it through
// go-plugin's test reattach path. Tests use it to run a backend under the
// race detector and a debugger without building a binary.
//
// stop ends serving and waits until Serve has returned, which includes the
// backend's Close when it has one. The returned Plugin has no process: Pid
// is 0 and Kill only disconnects.
func ServeInProcess(ctx context.Context, backend sdk.Backend, logger hclog.Logger) (p *Plugin, stop func(), err error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		wire.Serve(backend, wire.ServeConfig{Logger: logger, Test: &plugin.ServeTestConfig{
			Context:          serveCtx,
			ReattachConfigCh: reattach,
		}})
	}()
	stop = func() {
		cancel()
		<-served
	}
	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-served:
		cancel()
		return nil, nil, fmt.Errorf("in-process plugin: Serve returned before it listened")
	case <-ctx.Done():
		stop()
		return nil, nil, fmt.Errorf("in-process plugin: %w", ctx.Err())
	}
	// A reattached client takes its plugin set from Plugins, not from
	// VersionedPlugins: the set of the version the server speaks.
	set, ok := wire.VersionedPlugins()[rc.ProtocolVersion]
	if !ok {
		stop()
		return nil, nil, fmt.Errorf("in-process plugin: serves protocol version %d, which the core does not speak", rc.ProtocolVersion)
	}
	raw := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          set,
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		Logger:           logger,
	})
	rpc, err := raw.Client()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("in-process plugin: connect: %w", err)
	}
	v, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		raw.Kill()
		stop()
		return nil, nil, fmt.Errorf("in-process plugin: %w", err)
	}
	c, ok := v.(*wire.Client)
	if !ok {
		raw.Kill()
		stop()
		return nil, nil, fmt.Errorf("in-process plugin: unexpected client type %T", v)
	}
	return &Plugin{Client: c, Path: "(in-process)", raw: raw}, stop, nil
}
