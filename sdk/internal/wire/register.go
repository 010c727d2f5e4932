package wire

import (
	"google.golang.org/grpc"

	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

func registerSandbox(s *grpc.Server, srv *grpcServer) { pb.RegisterSandboxServer(s, srv) }
