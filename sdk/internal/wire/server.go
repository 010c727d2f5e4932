package wire

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpruntime/mcpruntime/sdk"
	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

// grpcServer adapts a Backend to the generated Sandbox service. It runs in
// the plugin process.
type grpcServer struct {
	pb.UnimplementedSandboxServer
	impl   sdk.Backend
	broker *plugin.GRPCBroker
	logger hclog.Logger

	mu    sync.Mutex
	hosts map[uint32]pb.HostClient
}

// recoverTo turns a backend panic into an Internal error so that one bad
// request does not take the plugin (and every session in it) down.
func (s *grpcServer) recoverTo(method string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("backend panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "backend panicked in %s: %v", method, r)
	}
}

func (s *grpcServer) Info(ctx context.Context, _ *pb.InfoRequest) (resp *pb.InfoResponse, err error) {
	defer s.recoverTo("sdk.Info", &err)
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToProto(info), nil
}

func (s *grpcServer) ConfigSchema(ctx context.Context, _ *pb.ConfigSchemaRequest) (resp *pb.ConfigSchemaResponse, err error) {
	defer s.recoverTo("ConfigSchema", &err)
	spec, err := s.impl.ConfigSpec(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := specToProto(spec)
	return out, toStatus(err)
}

func (s *grpcServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
	defer s.recoverTo("Configure", &err)
	cfg := &sdk.Config{JSON: req.GetConfigJson(), PoolSize: int(req.GetPoolSize()), StateDir: req.GetStateDir()}
	if err := s.impl.Configure(ctx, cfg); err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *grpcServer) sessionSpec(req *pb.CreateSessionRequest) (*sdk.SessionSpec, error) {
	spec := sessionFromProto(req)
	if id := req.GetHostBrokerId(); id != 0 {
		client, err := s.hostClient(id)
		if err != nil {
			return nil, err
		}
		spec.Host = &remoteHost{client: client, token: req.GetHostToken()}
	}
	return spec, nil
}

// hostClient dials the core's Host service once per broker stream.
func (s *grpcServer) hostClient(id uint32) (pb.HostClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.hosts[id]; ok {
		return c, nil
	}
	conn, err := s.broker.DialWithOptions(id, DialOptions()...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial host service: %v", err)
	}
	c := pb.NewHostClient(conn)
	if s.hosts == nil {
		s.hosts = map[uint32]pb.HostClient{}
	}
	s.hosts[id] = c
	return c, nil
}

func (s *grpcServer) CreateSession(ctx context.Context, req *pb.CreateSessionRequest) (resp *pb.CreateSessionResponse, err error) {
	defer s.recoverTo("CreateSession", &err)
	spec, err := s.sessionSpec(req)
	if err != nil {
		return nil, err
	}
	if err := s.impl.CreateSession(ctx, spec); err != nil {
		return nil, toStatus(err)
	}
	return &pb.CreateSessionResponse{}, nil
}

func (s *grpcServer) Execute(req *pb.ExecuteRequest, stream grpc.ServerStreamingServer[pb.ExecuteEvent]) (err error) {
	defer s.recoverTo("Execute", &err)
	var sendErr error
	var sendMu sync.Mutex
	emit := func(e sdk.Event) {
		ev := eventToProto(e)
		if ev == nil {
			return
		}
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(ev)
		}
	}
	res, err := s.impl.Execute(stream.Context(), &sdk.ExecRequest{
		SessionID: req.GetSessionId(),
		Code:      req.GetCode(),
		Timeout:   msDuration(req.GetTimeoutMs()),
	}, emit)
	if err != nil {
		return toStatus(err)
	}
	if res == nil {
		return status.Error(codes.Internal, "backend returned neither result nor error")
	}
	sendMu.Lock()
	defer sendMu.Unlock()
	if sendErr != nil {
		return fmt.Errorf("stream output: %w", sendErr)
	}
	return stream.Send(&pb.ExecuteEvent{Event: &pb.ExecuteEvent_Result{Result: resultToProto(res)}})
}

func (s *grpcServer) Snapshot(ctx context.Context, req *pb.SnapshotRequest) (resp *pb.SnapshotResponse, err error) {
	defer s.recoverTo("sdk.Snapshot", &err)
	snap, err := s.impl.Snapshot(ctx, req.GetSessionId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SnapshotResponse{SnapshotId: snap.ID, SizeBytes: snap.SizeBytes}, nil
}

func (s *grpcServer) Restore(ctx context.Context, req *pb.RestoreRequest) (resp *pb.RestoreResponse, err error) {
	defer s.recoverTo("Restore", &err)
	if req.GetSession() == nil {
		return nil, status.Error(codes.InvalidArgument, "restore: no session given")
	}
	spec, err := s.sessionSpec(req.GetSession())
	if err != nil {
		return nil, err
	}
	if err := s.impl.Restore(ctx, req.GetSnapshotId(), spec); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RestoreResponse{}, nil
}

func (s *grpcServer) DestroySession(ctx context.Context, req *pb.DestroySessionRequest) (resp *pb.DestroySessionResponse, err error) {
	defer s.recoverTo("DestroySession", &err)
	if err := s.impl.DestroySession(ctx, req.GetSessionId()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.DestroySessionResponse{}, nil
}

func (s *grpcServer) RecoverSessions(ctx context.Context, req *pb.RecoverSessionsRequest) (resp *pb.RecoverSessionsResponse, err error) {
	defer s.recoverTo("RecoverSessions", &err)
	specs := make([]*sdk.SessionSpec, 0, len(req.GetSessions()))
	for _, r := range req.GetSessions() {
		spec, err := s.sessionSpec(r)
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
	}
	resp = &pb.RecoverSessionsResponse{}
	rec, ok := s.impl.(sdk.Recoverer)
	if !ok {
		for _, spec := range specs {
			resp.Sessions = append(resp.Sessions, &pb.RecoveredSession{
				SessionId: spec.ID, Reason: "this backend does not recover sessions: they ended with the plugin process",
			})
		}
		return resp, nil
	}
	answers, err := rec.RecoverSessions(ctx, specs)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, a := range answers {
		resp.Sessions = append(resp.Sessions, &pb.RecoveredSession{SessionId: a.ID, Recovered: a.Recovered, Reason: a.Reason})
	}
	return resp, nil
}

func (s *grpcServer) DeleteSnapshot(ctx context.Context, req *pb.DeleteSnapshotRequest) (resp *pb.DeleteSnapshotResponse, err error) {
	defer s.recoverTo("DeleteSnapshot", &err)
	d, ok := s.impl.(sdk.SnapshotDeleter)
	if !ok {
		return nil, toStatus(fmt.Errorf("delete snapshot %q: %w", req.GetSnapshotId(), sdk.ErrNotSupported))
	}
	if err := d.DeleteSnapshot(ctx, req.GetSnapshotId()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteSnapshotResponse{}, nil
}

func (s *grpcServer) Health(ctx context.Context, _ *pb.HealthRequest) (resp *pb.HealthResponse, err error) {
	defer s.recoverTo("sdk.Health", &err)
	h, err := s.impl.Health(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.HealthResponse{Healthy: h.Healthy, Message: h.Message, Sessions: int32(h.Sessions)}, nil
}

// remoteHost is the plugin's view of the core's Host service for one session.
type remoteHost struct {
	client pb.HostClient
	token  string
}

func (h *remoteHost) CallTool(ctx context.Context, req *sdk.ToolCall) (*sdk.ToolResult, error) {
	resp, err := h.client.CallTool(ctx, &pb.CallToolRequest{
		Token: h.token, Server: req.Server, Tool: req.Tool, ArgumentsJson: req.Arguments,
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.ToolResult{Result: resp.GetResultJson(), IsError: resp.GetIsError(), Code: resp.GetErrorCode(), Content: contentFromPB(resp.GetContent())}, nil
}

func (h *remoteHost) AskLLM(ctx context.Context, req *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	resp, err := h.client.AskLLM(ctx, &pb.AskLLMRequest{
		Token: h.token, Prompt: req.Prompt, System: req.System, Model: req.Model,
		MaxTokens: int32(req.MaxTokens), Temperature: req.Temperature,
		Context: req.Context, Recursive: req.Recursive,
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.LLMResponse{Text: resp.GetText(), PromptTokens: resp.GetPromptTokens(), CompletionTokens: resp.GetCompletionTokens()}, nil
}

var errNoResult = errors.New("plugin closed the execute stream without a result")
