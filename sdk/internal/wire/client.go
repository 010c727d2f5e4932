package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/mcpruntime/mcpruntime/sdk"
	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

// Client is the core's handle on a running plugin. It implements Backend, so
// callers never see protocol types, and it serves the Host service each
// session's SessionSpec.Host provides through go-plugin's broker.
type Client struct {
	rpc      pb.SandboxClient
	broker   *plugin.GRPCBroker
	hosts    *hostRegistry
	protocol int

	serveOnce sync.Once
	brokerID  uint32
}

var (
	_ sdk.Backend         = (*Client)(nil)
	_ sdk.Recoverer       = (*Client)(nil)
	_ sdk.SnapshotDeleter = (*Client)(nil)
)

func newClient(conn *grpc.ClientConn, broker *plugin.GRPCBroker, protocol int) *Client {
	return &Client{rpc: pb.NewSandboxClient(conn), broker: broker, hosts: newHostRegistry(), protocol: protocol}
}

// Protocol is the plugin protocol version negotiated with the plugin.
func (c *Client) Protocol() int { return c.protocol }

// needs reports, wrapping ErrNotSupported, a call the negotiated protocol
// version does not have; the plugin is not asked.
func (c *Client) needs(call string, version int) error {
	if c.protocol >= version {
		return nil
	}
	return fmt.Errorf("%s needs plugin protocol %d; the plugin speaks %d: %w", call, version, c.protocol, sdk.ErrNotSupported)
}

// Info implements Backend.
func (c *Client) Info(ctx context.Context) (*sdk.Info, error) {
	resp, err := c.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return infoFromProto(resp), nil
}

// ConfigSpec implements Backend.
func (c *Client) ConfigSpec(ctx context.Context) (*sdk.ConfigSpec, error) {
	resp, err := c.rpc.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return specFromProto(resp)
}

// Configure implements Backend.
func (c *Client) Configure(ctx context.Context, cfg *sdk.Config) error {
	_, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{
		ConfigJson: cfg.JSON, PoolSize: int32(cfg.PoolSize), StateDir: cfg.StateDir,
	})
	return fromStatus(err)
}

// hostStream starts serving the Host service on a broker stream, once.
func (c *Client) hostStream() uint32 {
	c.serveOnce.Do(func() {
		c.brokerID = c.broker.NextId()
		go c.broker.AcceptAndServe(c.brokerID, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(append(opts, ServerOptions()...)...)
			pb.RegisterHostServer(s, c.hosts)
			return s
		})
	})
	return c.brokerID
}

func (c *Client) sessionRequest(spec *sdk.SessionSpec) *pb.CreateSessionRequest {
	req := sessionToProto(spec)
	if spec.Host != nil {
		req.HostBrokerId = c.hostStream()
		req.HostToken = c.hosts.add(spec.ID, spec.Host)
	}
	return req
}

// CreateSession implements Backend.
func (c *Client) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	req := c.sessionRequest(spec)
	if _, err := c.rpc.CreateSession(ctx, req); err != nil {
		c.hosts.revoke(spec.ID)
		return fromStatus(err)
	}
	return nil
}

// Execute implements Backend.
func (c *Client) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	stream, err := c.rpc.Execute(ctx, &pb.ExecuteRequest{
		SessionId: req.SessionID, Code: req.Code, TimeoutMs: req.Timeout.Milliseconds(),
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, errNoResult
		}
		if err != nil {
			return nil, fromStatus(err)
		}
		switch e := ev.GetEvent().(type) {
		case *pb.ExecuteEvent_Stdout:
			emit(sdk.Event{Kind: sdk.EventStdout, Data: e.Stdout.GetData()})
		case *pb.ExecuteEvent_Stderr:
			emit(sdk.Event{Kind: sdk.EventStderr, Data: e.Stderr.GetData()})
		case *pb.ExecuteEvent_HostCall:
			n := e.HostCall
			emit(sdk.Event{Kind: sdk.EventHostCall, HostCall: &sdk.HostCallNotice{
				Method: n.GetMethod(), Detail: n.GetDetail(),
				Duration: time.Duration(n.GetDurationUs()) * time.Microsecond, Error: n.GetError(),
			}})
		case *pb.ExecuteEvent_Display:
			emit(sdk.Event{Kind: sdk.EventDisplay, Display: &sdk.Display{Data: e.Display.GetData()}})
		case *pb.ExecuteEvent_Result:
			return resultFromProto(e.Result), nil
		}
	}
}

// Snapshot implements Backend.
func (c *Client) Snapshot(ctx context.Context, sessionID string) (*sdk.Snapshot, error) {
	resp, err := c.rpc.Snapshot(ctx, &pb.SnapshotRequest{SessionId: sessionID})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.Snapshot{ID: resp.GetSnapshotId(), SizeBytes: resp.GetSizeBytes()}, nil
}

// Restore implements Backend.
func (c *Client) Restore(ctx context.Context, snapshotID string, spec *sdk.SessionSpec) error {
	req := c.sessionRequest(spec)
	if _, err := c.rpc.Restore(ctx, &pb.RestoreRequest{SnapshotId: snapshotID, Session: req}); err != nil {
		c.hosts.revoke(spec.ID)
		return fromStatus(err)
	}
	return nil
}

// DestroySession implements Backend. The session's host token is revoked
// first, so a late call from a dying sandbox is refused.
func (c *Client) DestroySession(ctx context.Context, sessionID string) error {
	c.hosts.revoke(sessionID)
	_, err := c.rpc.DestroySession(ctx, &pb.DestroySessionRequest{SessionId: sessionID})
	return fromStatus(err)
}

// Health implements Backend.
func (c *Client) Health(ctx context.Context) (*sdk.Health, error) {
	resp, err := c.rpc.Health(ctx, &pb.HealthRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.Health{Healthy: resp.GetHealthy(), Message: resp.GetMessage(), Sessions: int(resp.GetSessions())}, nil
}

// RecoverSessions implements Recoverer (protocol 2). Each session gets a
// fresh Host token on the broker's Host service, as CreateSession gives it;
// the tokens of sessions the plugin did not recover are revoked again. The
// answer has one entry per spec, in the order given: a session the plugin
// did not mention counts as not recovered. On a version-1 plugin it returns
// an error wrapping ErrNotSupported without calling it.
func (c *Client) RecoverSessions(ctx context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	if err := c.needs("RecoverSessions", 2); err != nil {
		return nil, err
	}
	req := &pb.RecoverSessionsRequest{Sessions: make([]*pb.CreateSessionRequest, len(specs))}
	for i, spec := range specs {
		req.Sessions[i] = c.sessionRequest(spec)
	}
	resp, err := c.rpc.RecoverSessions(ctx, req)
	if err != nil {
		for _, spec := range specs {
			c.hosts.revoke(spec.ID)
		}
		return nil, fromStatus(err)
	}
	answers := make(map[string]*pb.RecoveredSession, len(resp.GetSessions()))
	for _, a := range resp.GetSessions() {
		answers[a.GetSessionId()] = a
	}
	out := make([]sdk.RecoveredSession, len(specs))
	for i, spec := range specs {
		a, ok := answers[spec.ID]
		switch {
		case !ok:
			out[i] = sdk.RecoveredSession{ID: spec.ID, Reason: "the plugin did not answer for this session"}
		case a.GetRecovered():
			out[i] = sdk.RecoveredSession{ID: spec.ID, Recovered: true}
		default:
			reason := a.GetReason()
			if reason == "" {
				reason = "the plugin gave no reason"
			}
			out[i] = sdk.RecoveredSession{ID: spec.ID, Reason: reason}
		}
		if !out[i].Recovered {
			c.hosts.revoke(spec.ID)
		}
	}
	return out, nil
}

// DeleteSnapshot implements SnapshotDeleter (protocol 2). On a version-1
// plugin it returns an error wrapping ErrNotSupported without calling it.
func (c *Client) DeleteSnapshot(ctx context.Context, snapshotID string) error {
	if err := c.needs("DeleteSnapshot", 2); err != nil {
		return err
	}
	_, err := c.rpc.DeleteSnapshot(ctx, &pb.DeleteSnapshotRequest{SnapshotId: snapshotID})
	return fromStatus(err)
}

// RevokeHost stops answering host calls for a session: calls made with its
// token are refused with ErrInvalidToken from then on.
func (c *Client) RevokeHost(sessionID string) { c.hosts.revoke(sessionID) }

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// describe is used in error messages about a session.
func describe(id string) string { return fmt.Sprintf("session %q", id) }

// HostTokens is how many sessions' Host tokens the client serves now.
func (c *Client) HostTokens() int {
	c.hosts.mu.RLock()
	defer c.hosts.mu.RUnlock()
	return len(c.hosts.byToken)
}
