package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/internal/wire"
)

// The protocol-2 calls (RecoverSessions, DeleteSnapshot) and version
// negotiation, over real gRPC: in-process connections through go-plugin's
// broker, and real plugin processes (this test binary started again as a
// plugin, see TestMain).

// memBackend keeps sessions in memory. Execute of "host" calls the
// session's Host and prints what it answered; any other code is echoed.
type memBackend struct {
	sdk.NoSnapshots

	mu       sync.Mutex
	sessions map[string]*sdk.SessionSpec
	// seen holds every spec the backend was handed, by id (the latest).
	seen map[string]*sdk.SessionSpec
}

func newMemBackend() *memBackend {
	return &memBackend{sessions: map[string]*sdk.SessionSpec{}, seen: map[string]*sdk.SessionSpec{}}
}

func (b *memBackend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{Name: "mem", Version: "0", ProtocolVersions: []int{sdk.ProtocolVersion}}, nil
}

func (b *memBackend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) {
	return &sdk.ConfigSpec{}, nil
}

func (b *memBackend) Configure(context.Context, *sdk.Config) error { return nil }

func (b *memBackend) CreateSession(_ context.Context, spec *sdk.SessionSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.sessions[spec.ID]; ok {
		return sdk.ErrSessionExists
	}
	b.sessions[spec.ID], b.seen[spec.ID] = spec, spec
	return nil
}

func (b *memBackend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	b.mu.Lock()
	spec, ok := b.sessions[req.SessionID]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, req.SessionID)
	}
	if req.Code != "host" {
		emit(sdk.Event{Kind: sdk.EventStdout, Data: []byte(req.Code)})
		return &sdk.ExecResult{}, nil
	}
	if spec.Host == nil {
		return nil, errors.New("no host")
	}
	res, err := spec.Host.CallTool(ctx, &sdk.ToolCall{Server: "s", Tool: "t", Arguments: json.RawMessage(`{}`)})
	if err != nil {
		return nil, err
	}
	emit(sdk.Event{Kind: sdk.EventStdout, Data: res.Result})
	return &sdk.ExecResult{}, nil
}

func (b *memBackend) DestroySession(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.sessions, id)
	return nil
}

func (b *memBackend) Health(context.Context) (*sdk.Health, error) {
	return &sdk.Health{Healthy: true}, nil
}

func (b *memBackend) spec(id string) *sdk.SessionSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[id]
}

// recoveringBackend adopts sessions whose id starts with "keep", says
// "gone" for the others, and leaves ids starting with "silent" out of its
// answer.
type recoveringBackend struct {
	*memBackend
	recoverCalls, deleteCalls int
	deleted                   []string
}

func (b *recoveringBackend) RecoverSessions(_ context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recoverCalls++
	var out []sdk.RecoveredSession
	for _, spec := range specs {
		b.seen[spec.ID] = spec
		switch {
		case strings.HasPrefix(spec.ID, "keep"):
			b.sessions[spec.ID] = spec
			out = append(out, sdk.RecoveredSession{ID: spec.ID, Recovered: true})
		case strings.HasPrefix(spec.ID, "silent"):
		default:
			out = append(out, sdk.RecoveredSession{ID: spec.ID, Reason: "gone"})
		}
	}
	return out, nil
}

func (b *recoveringBackend) DeleteSnapshot(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deleteCalls++
	if id == "missing" {
		return fmt.Errorf("snapshot %s: %w", id, sdk.ErrSessionNotFound)
	}
	b.deleted = append(b.deleted, id)
	return nil
}

// namedHost answers CallTool with its name.
type namedHost struct {
	name  string
	mu    sync.Mutex
	calls int
}

func (h *namedHost) CallTool(context.Context, *sdk.ToolCall) (*sdk.ToolResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return &sdk.ToolResult{Result: json.RawMessage(fmt.Sprintf("%q", h.name))}, nil
}

func (h *namedHost) AskLLM(context.Context, *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return &sdk.LLMResponse{Text: h.name}, nil
}

func (h *namedHost) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// connect serves backend over an in-process gRPC connection and returns the
// core's client for it, negotiated at protocol.
func connect(t *testing.T, backend sdk.Backend, protocol int) *Client {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		sdk.PluginName: &wire.GRPCPlugin{Backend: backend, Protocol: protocol},
	})
	// Close asks the server to stop (go-plugin's controller service).
	t.Cleanup(func() { client.Close() })
	v, err := client.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return v.(*Client)
}

func run(t *testing.T, c *Client, id, code string) string {
	t.Helper()
	var out strings.Builder
	if _, err := c.Execute(context.Background(), &sdk.ExecRequest{SessionID: id, Code: code}, func(e sdk.Event) { out.Write(e.Data) }); err != nil {
		t.Fatalf("execute %q in %s: %v", code, id, err)
	}
	return out.String()
}

func TestRecoverSessionsOverGRPC(t *testing.T) {
	ctx := context.Background()
	b := &recoveringBackend{memBackend: newMemBackend()}
	c := connect(t, b, 2)
	if c.Protocol() != 2 {
		t.Fatalf("Protocol() = %d, want 2", c.Protocol())
	}
	before := &namedHost{name: "before"}
	if err := c.CreateSession(ctx, &sdk.SessionSpec{ID: "keep-1", Host: before}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, c, "keep-1", "host"); got != `"before"` {
		t.Fatalf("host call before recovery answered %s", got)
	}

	keep, lost, silent := &namedHost{name: "keep"}, &namedHost{name: "lost"}, &namedHost{name: "silent"}
	got, err := c.RecoverSessions(ctx, []*sdk.SessionSpec{
		{ID: "keep-1", Workspace: "/w", Env: map[string]string{"A": "1"}, Host: keep},
		{ID: "lost-1", Host: lost},
		{ID: "silent-1", Host: silent},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("answers: %+v", got)
	}
	if got[0] != (sdk.RecoveredSession{ID: "keep-1", Recovered: true}) {
		t.Errorf("keep-1: %+v", got[0])
	}
	if got[1].ID != "lost-1" || got[1].Recovered || got[1].Reason != "gone" {
		t.Errorf("lost-1: %+v", got[1])
	}
	if got[2].ID != "silent-1" || got[2].Recovered || !strings.Contains(got[2].Reason, "did not answer") {
		t.Errorf("silent-1: %+v", got[2])
	}
	if s := b.spec("keep-1"); s.Workspace != "/w" || s.Env["A"] != "1" {
		t.Errorf("the backend received %+v", s)
	}

	// The recovered session reaches its new Host through a fresh broker
	// stream and token.
	if out := run(t, c, "keep-1", "host"); out != `"keep"` {
		t.Fatalf("host call after recovery answered %s", out)
	}
	if before.count() != 1 || keep.count() != 1 {
		t.Errorf("host calls: before %d, keep %d", before.count(), keep.count())
	}
	// The sessions not recovered had their tokens revoked.
	for _, id := range []string{"lost-1", "silent-1"} {
		h := b.spec(id).Host
		if h == nil {
			t.Fatalf("%s was handed no host", id)
		}
		_, err := h.CallTool(ctx, &sdk.ToolCall{Server: "s", Tool: "t"})
		if !errors.Is(err, sdk.ErrInvalidToken) {
			t.Errorf("%s host call after recovery: %v, want sdk.ErrInvalidToken", id, err)
		}
	}
	if lost.count()+silent.count() != 0 {
		t.Errorf("revoked hosts were called")
	}

	if err := c.DeleteSnapshot(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot(ctx, "missing"); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("DeleteSnapshot(missing): %v", err)
	}
	if len(b.deleted) != 1 || b.deleted[0] != "snap-1" {
		t.Errorf("deleted %v", b.deleted)
	}
}

func TestRecoverSessionsWithoutRecoverer(t *testing.T) {
	ctx := context.Background()
	b := newMemBackend()
	c := connect(t, b, 2)
	h := &namedHost{name: "h"}
	got, err := c.RecoverSessions(ctx, []*sdk.SessionSpec{{ID: "a", Host: h}, {ID: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("answers: %+v", got)
	}
	for i, id := range []string{"a", "b"} {
		if got[i].ID != id || got[i].Recovered || !strings.Contains(got[i].Reason, "does not recover sessions") {
			t.Errorf("answer %d: %+v", i, got[i])
		}
	}
	if n := c.HostTokens(); n != 0 {
		t.Errorf("%d host tokens left registered for sessions not recovered", n)
	}
	err = c.DeleteSnapshot(ctx, "snap")
	if !errors.Is(err, sdk.ErrNotSupported) || wire.GRPCCode(err) != codes.Unimplemented {
		t.Errorf("DeleteSnapshot without SnapshotDeleter: %v", err)
	}
	if got, err := c.RecoverSessions(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("RecoverSessions(nil) = %+v, %v", got, err)
	}
}

func TestRecoverSessionsPanicIsAnError(t *testing.T) {
	c := connect(t, panickingRecoverer{newMemBackend()}, 2)
	_, err := c.RecoverSessions(context.Background(), []*sdk.SessionSpec{{ID: "a", Host: &namedHost{}}})
	if err == nil || !strings.Contains(err.Error(), "panicked in RecoverSessions") {
		t.Fatalf("err = %v", err)
	}
	if c.HostTokens() != 0 {
		t.Error("host token left registered after a failed RecoverSessions")
	}
}

type panickingRecoverer struct{ *memBackend }

func (panickingRecoverer) RecoverSessions(context.Context, []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	panic("boom")
}

func TestVersion1ClientDoesNotCallVersion2RPCs(t *testing.T) {
	ctx := context.Background()
	b := &recoveringBackend{memBackend: newMemBackend()}
	c := connect(t, b, 1)
	if err := c.CreateSession(ctx, &sdk.SessionSpec{ID: "keep-1", Host: &namedHost{name: "h"}}); err != nil {
		t.Fatal(err)
	}
	if out := run(t, c, "keep-1", "host"); out != `"h"` {
		t.Fatalf("protocol 1 session: %s", out)
	}
	_, err := c.RecoverSessions(ctx, []*sdk.SessionSpec{{ID: "keep-1"}})
	if !errors.Is(err, sdk.ErrNotSupported) || !strings.Contains(err.Error(), "the plugin speaks 1") {
		t.Errorf("RecoverSessions on protocol 1: %v", err)
	}
	if err := c.DeleteSnapshot(ctx, "s"); !errors.Is(err, sdk.ErrNotSupported) {
		t.Errorf("DeleteSnapshot on protocol 1: %v", err)
	}
	if b.recoverCalls != 0 || b.deleteCalls != 0 {
		t.Errorf("the plugin was called: recover %d, delete %d", b.recoverCalls, b.deleteCalls)
	}
}

func TestProtocolVersions(t *testing.T) {
	vs := sdk.ProtocolVersions()
	if len(vs) != 2 || vs[0] != 1 || vs[1] != 2 || sdk.ProtocolVersion != 2 {
		t.Fatalf("sdk.ProtocolVersions() = %v, sdk.ProtocolVersion = %d", vs, sdk.ProtocolVersion)
	}
	vp := VersionedPlugins()
	for _, v := range vs {
		p, ok := vp[v][sdk.PluginName].(*wire.GRPCPlugin)
		if !ok || p.Protocol != v {
			t.Errorf("VersionedPlugins()[%d] = %+v", v, vp[v])
		}
	}
}

// testPluginEnv makes this test binary serve memBackend as a plugin
// speaking the protocol version it names ("1", "2" or "99").
const testPluginEnv = "MCPRUNTIME_SDK_TEST_PLUGIN"

func TestMain(m *testing.M) {
	switch os.Getenv(testPluginEnv) {
	case "":
		os.Exit(m.Run())
	case "2":
		wire.Serve(&recoveringBackend{memBackend: newMemBackend()}, wire.ServeConfig{})
	case "1":
		serveAt(1)
	case "99":
		serveAt(99)
	}
	os.Exit(0)
}

// serveAt serves a backend as a plugin built against an sdk speaking only
// protocol version v would.
func serveAt(v int) { ServeVersion(&recoveringBackend{memBackend: newMemBackend()}, v) }

func launchSelf(t *testing.T, version string) (*Plugin, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Launch(ctx, exe, WithEnv(testPluginEnv+"="+version))
	if err == nil {
		t.Cleanup(p.Kill)
	}
	return p, err
}

func TestNegotiatesVersion2WithACurrentPlugin(t *testing.T) {
	p, err := launchSelf(t, "2")
	if err != nil {
		t.Fatal(err)
	}
	if p.ProtocolVersion() != 2 || p.Protocol() != 2 {
		t.Fatalf("negotiated %d (client %d), want 2", p.ProtocolVersion(), p.Protocol())
	}
	ctx := context.Background()
	got, err := p.RecoverSessions(ctx, []*sdk.SessionSpec{{ID: "keep-1", Host: &namedHost{name: "k"}}, {ID: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Recovered || got[1].Recovered || got[1].Reason != "gone" {
		t.Fatalf("answers: %+v", got)
	}
	var out strings.Builder
	if _, err := p.Execute(ctx, &sdk.ExecRequest{SessionID: "keep-1", Code: "host"}, func(e sdk.Event) { out.Write(e.Data) }); err != nil || out.String() != `"k"` {
		t.Fatalf("recovered session: %q %v", out.String(), err)
	}
}

func TestVersion1PluginKeepsWorking(t *testing.T) {
	p, err := launchSelf(t, "1")
	if err != nil {
		t.Fatal(err)
	}
	if p.ProtocolVersion() != 1 || p.Protocol() != 1 {
		t.Fatalf("negotiated %d (client %d), want 1", p.ProtocolVersion(), p.Protocol())
	}
	ctx := context.Background()
	if err := p.CreateSession(ctx, &sdk.SessionSpec{ID: "a", Host: &namedHost{name: "h"}}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := p.Execute(ctx, &sdk.ExecRequest{SessionID: "a", Code: "host"}, func(e sdk.Event) { out.Write(e.Data) }); err != nil || out.String() != `"h"` {
		t.Fatalf("execute on a version-1 plugin: %q %v", out.String(), err)
	}
	if _, err := p.RecoverSessions(ctx, []*sdk.SessionSpec{{ID: "a"}}); !errors.Is(err, sdk.ErrNotSupported) {
		t.Errorf("RecoverSessions on a version-1 plugin: %v", err)
	}
	if err := p.DeleteSnapshot(ctx, "s"); !errors.Is(err, sdk.ErrNotSupported) {
		t.Errorf("DeleteSnapshot on a version-1 plugin: %v", err)
	}
}

func TestUnknownVersionIsRefused(t *testing.T) {
	_, err := launchSelf(t, "99")
	if !errors.Is(err, ErrIncompatibleProtocol) {
		t.Fatalf("err = %v, want ErrIncompatibleProtocol", err)
	}
	for _, want := range []string{"speaks protocol version 99", "this core speaks 1 and 2", "rebuild the plugin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
