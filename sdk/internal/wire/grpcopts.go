package wire

import (
	"google.golang.org/grpc"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// windowBytes is the fixed HTTP/2 flow-control window of every connection
// between the core and a plugin. Setting it turns off grpc-go's bandwidth
// estimation, which answers received data with PING frames: on a local
// socket that is only extra writes and wake-ups on both sides of every
// call (an Execute with one output event cost one more round of them).
const windowBytes = 16 << 20

// DialOptions and ServerOptions apply MaxMessageBytes and the fixed window
// to every gRPC connection between the core and a plugin (both directions,
// both services).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes)),
		grpc.WithInitialWindowSize(windowBytes),
		grpc.WithInitialConnWindowSize(windowBytes),
	}
}

func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxSendMsgSize(sdk.MaxMessageBytes),
		grpc.InitialWindowSize(windowBytes), grpc.InitialConnWindowSize(windowBytes),
	}
}
