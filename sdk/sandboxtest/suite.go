// Package sandboxtest is the conformance suite every mcpruntime sandbox
// plugin must pass. It launches the plugin binary as the core would (a real
// process, real gRPC, the Host service served through go-plugin's broker)
// and checks the whole contract: handshake, info, config errors, execution,
// state, workspace, limits, hostile code, host calls, destroy and restart.
//
// In a plugin's tests:
//
//	func TestConformance(t *testing.T) { sandboxtest.Run(t, "./bin/mcpruntime-plugin-mine") }
//
// The same checks back `mcpruntime plugins check PATH`.
package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Option adjusts the suite for a backend.
type Option func(*options)

type options struct {
	config       json.RawMessage
	execTimeout  time.Duration
	startTimeout time.Duration
	poolSize     int
	stateDir     string
	logger       hclog.Logger
	env          []string
	only         []string
}

// WithConfig is the plugin's config block as JSON (as the core would send).
func WithConfig(js string) Option { return func(o *options) { o.config = json.RawMessage(js) } }

// WithExecTimeout bounds ordinary executions (default 60s); slow backends
// (software-emulated VMs) may need more.
func WithExecTimeout(d time.Duration) Option { return func(o *options) { o.execTimeout = d } }

// WithStartTimeout bounds plugin start-up and session creation (default 120s).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithPoolSize is passed to Configure (default 0).
func WithPoolSize(n int) Option { return func(o *options) { o.poolSize = n } }

// WithStateDir is passed to Configure (default: a temporary directory).
func WithStateDir(dir string) Option { return func(o *options) { o.stateDir = dir } }

// WithLogger receives the plugin's logs.
func WithLogger(l hclog.Logger) Option { return func(o *options) { o.logger = l } }

// WithEnv sets extra environment variables for the plugin process.
func WithEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// WithChecks runs only the named checks, and those every check relies on
// (handshake, info, configure). For a plugin's own focused tests; a plugin
// conforms only when the whole suite passes.
func WithChecks(names ...string) Option {
	return func(o *options) { o.only = append(o.only, names...) }
}

// prerequisites are the checks WithChecks always keeps.
var prerequisites = []string{"handshake", "info", "configure"}

// checks are the checks the options select, in order.
func (o *options) checks() []Check {
	all := Checks()
	if len(o.only) == 0 {
		return all
	}
	var out []Check
	for _, c := range all {
		if slices.Contains(o.only, c.Name) || slices.Contains(prerequisites, c.Name) {
			out = append(out, c)
		}
	}
	return out
}

// Check is one conformance check.
type Check struct {
	Name string
	// Doc says what the check proves.
	Doc string
	Run func(s *Suite) error
}

// errSkip marks a check that does not apply to the plugin.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return "skipped: " + e.reason }

// IsSkip reports whether a check's error means "does not apply".
func IsSkip(err error) (string, bool) {
	if s, ok := err.(errSkip); ok {
		return s.reason, true
	}
	return "", false
}

func skip(format string, a ...any) error { return errSkip{fmt.Sprintf(format, a...)} }

// Suite is the state shared by the checks: the running plugin and its
// workspace.
type Suite struct {
	// Path is the plugin executable; empty when the backend is served in
	// process (NewBackend).
	Path      string
	Plugin    *host.Plugin
	Info      *sdk.Info
	Workspace string

	opts *options
	tmp  string
	// backend is served in process when set; stop ends that serving.
	backend sdk.Backend
	stop    func()
	// configures counts the successful Configure calls the suite made to
	// the running plugin: the contract allows one before any session.
	configures int
	seq        atomic.Int64
	mu         sync.Mutex
	calls      []hostCall
	created    []string
	meetings   map[string]*meeting // see rendezvous
}

type hostCall struct {
	session, method, arg string
}

// New launches the plugin at path. Close it when done.
func New(ctx context.Context, path string, opts ...Option) (*Suite, error) {
	return newSuite(ctx, path, nil, opts)
}

// NewBackend serves backend inside this process (host.ServeInProcess: real
// gRPC and Host broker, no plugin process) so that its code runs under the
// test binary's race detector. Close it when done.
func NewBackend(ctx context.Context, backend sdk.Backend, opts ...Option) (*Suite, error) {
	if backend == nil {
		return nil, errors.New("sandboxtest: nil backend")
	}
	return newSuite(ctx, "", backend, opts)
}

func newSuite(ctx context.Context, path string, backend sdk.Backend, opts []Option) (*Suite, error) {
	o := &options{execTimeout: 60 * time.Second, startTimeout: 120 * time.Second}
	for _, f := range opts {
		f(o)
	}
	tmp, err := os.MkdirTemp("", "sandboxtest-")
	if err != nil {
		return nil, err
	}
	if o.stateDir == "" {
		o.stateDir = filepath.Join(tmp, "state")
	}
	s := &Suite{Path: path, backend: backend, opts: o, tmp: tmp, Workspace: filepath.Join(tmp, "workspace")}
	if err := os.MkdirAll(s.Workspace, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := s.launch(ctx); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return s, nil
}

// InProcess reports whether the backend is served inside this process.
func (s *Suite) InProcess() bool { return s.backend != nil }

func (s *Suite) launch(ctx context.Context) error {
	logger := s.opts.logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.startTimeout)
	defer cancel()
	s.configures = 0
	if s.backend != nil {
		p, stop, err := host.ServeInProcess(ctx, s.backend, logger)
		if err != nil {
			return err
		}
		s.Plugin, s.stop = p, stop
		return nil
	}
	p, err := host.Launch(ctx, s.Path, host.WithLaunchLogger(logger), host.WithStartTimeout(s.opts.startTimeout), host.WithEnv(s.opts.env...))
	if err != nil {
		return err
	}
	s.Plugin = p
	return nil
}

// config is the suite's valid configuration.
func (s *Suite) config() *sdk.Config {
	return &sdk.Config{JSON: s.opts.config, PoolSize: s.opts.poolSize, StateDir: s.opts.stateDir}
}

// configure is the suite's one Configure of a running plugin.
func (s *Suite) configure(ctx context.Context) error {
	if s.configures > 0 {
		return fmt.Errorf("sandboxtest: the suite would configure the plugin a second time (it is configured once, before any session)")
	}
	if err := s.Plugin.Configure(ctx, s.config()); err != nil {
		return err
	}
	s.configures++
	return nil
}

// Close kills the plugin and removes the suite's temporary files.
func (s *Suite) Close() {
	if s.Plugin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, id := range s.created {
			_ = s.Plugin.DestroySession(ctx, id)
		}
		cancel()
		s.Plugin.Kill()
	}
	if s.stop != nil {
		s.stop()
	}
	os.RemoveAll(s.tmp)
}

// suiteHost answers host calls and records which session made them.
type suiteHost struct {
	s       *Suite
	session string
}

func (h *suiteHost) record(method, arg string) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.calls = append(h.s.calls, hostCall{session: h.session, method: method, arg: arg})
}

func (h *suiteHost) AskLLM(_ context.Context, r *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	h.record("ask_llm", r.Prompt)
	return &sdk.LLMResponse{Text: "pong: " + r.Prompt, PromptTokens: 1, CompletionTokens: 2}, nil
}

func (h *suiteHost) CallTool(ctx context.Context, c *sdk.ToolCall) (*sdk.ToolResult, error) {
	h.record("call_tool", c.Server+"."+c.Tool)
	if c.Server == suiteServer {
		return h.s.suiteTool(ctx, c)
	}
	return &sdk.ToolResult{Result: c.Arguments}, nil
}

// NewSession creates a session on the suite's workspace with limits applied
// on top of the suite's defaults.
func (s *Suite) NewSession(ctx context.Context, limits sdk.Limits) (string, error) {
	return s.NewSessionSpec(ctx, &sdk.SessionSpec{Limits: limits})
}

// NewSessionSpec creates a session from spec; the suite fills in the ID,
// the Host, an empty Workspace and a zero Timeout.
func (s *Suite) NewSessionSpec(ctx context.Context, spec *sdk.SessionSpec) (string, error) {
	id := fmt.Sprintf("conformance-%d-%d", os.Getpid(), s.seq.Add(1))
	spec.ID, spec.Host = id, &suiteHost{s: s, session: id}
	if spec.Workspace == "" {
		spec.Workspace = s.Workspace
	}
	if spec.Limits.Timeout == 0 {
		spec.Limits.Timeout = s.opts.execTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.startTimeout)
	defer cancel()
	if err := s.Plugin.CreateSession(cctx, spec); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	s.created = append(s.created, id)
	return id, nil
}

// Output is what one execution produced.
type Output struct {
	Result  *sdk.ExecResult
	Stdout  string
	Stderr  string
	Notices []*sdk.HostCallNotice
	// Displays are the rich outputs, in order; DisplayAt says when each
	// arrived and DisplayAfter how many stdout bytes came before it.
	Displays     []*sdk.Display
	DisplayAt    []time.Time
	DisplayAfter []int
	// FirstOutput is when the first stdout chunk arrived.
	FirstOutput time.Time
}

// Exec runs code in a session and collects everything it produced.
func (s *Suite) Exec(ctx context.Context, session, code string) (*Output, error) {
	out := &Output{}
	var stdout, stderr strings.Builder
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(ctx, s.opts.execTimeout+s.opts.startTimeout)
	defer cancel()
	res, err := s.Plugin.Execute(ctx, &sdk.ExecRequest{SessionID: session, Code: code}, func(e sdk.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case sdk.EventStdout:
			if out.FirstOutput.IsZero() {
				out.FirstOutput = time.Now()
			}
			stdout.Write(e.Data)
		case sdk.EventStderr:
			stderr.Write(e.Data)
		case sdk.EventHostCall:
			out.Notices = append(out.Notices, e.HostCall)
		case sdk.EventDisplay:
			out.Displays = append(out.Displays, e.Display)
			out.DisplayAt = append(out.DisplayAt, time.Now())
			out.DisplayAfter = append(out.DisplayAfter, stdout.Len())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("execute %q: %w", clip(code), err)
	}
	out.Result, out.Stdout, out.Stderr = res, stdout.String(), stderr.String()
	return out, nil
}

// expectOK runs code and requires success and the exact stdout.
func (s *Suite) expectOK(ctx context.Context, session, code, stdout string) error {
	out, err := s.Exec(ctx, session, code)
	if err != nil {
		return err
	}
	if !out.Result.OK() {
		return fmt.Errorf("%q failed: %s (exit %d) stderr=%q", clip(code), out.Result.Message, out.Result.ExitCode, clip(out.Stderr))
	}
	if out.Stdout != stdout {
		return fmt.Errorf("%q printed %q, want %q", clip(code), clip(out.Stdout), stdout)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// Run runs every check as a subtest of t against the plugin at path.
func Run(t *testing.T, path string, opts ...Option) {
	t.Helper()
	s, err := New(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	s.runTests(t)
}

// RunBackend runs every check as a subtest of t against backend served in
// this process (see NewBackend): the plugin's code runs in the test binary,
// under -race when the test runs with it. The restart check, which kills
// the plugin process, is skipped.
func RunBackend(t *testing.T, backend sdk.Backend, opts ...Option) {
	t.Helper()
	s, err := NewBackend(context.Background(), backend, opts...)
	if err != nil {
		t.Fatalf("serve backend in process: %v", err)
	}
	s.runTests(t)
}

func (s *Suite) runTests(t *testing.T) {
	t.Helper()
	t.Cleanup(s.Close)
	for _, c := range s.opts.checks() {
		t.Run(c.Name, func(t *testing.T) {
			err := c.Run(s)
			if reason, ok := IsSkip(err); ok {
				t.Skip(reason)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Result is the outcome of one check in a report.
type Result struct {
	Name     string        `json:"name"`
	Doc      string        `json:"doc"`
	Passed   bool          `json:"passed"`
	Skipped  bool          `json:"skipped,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Report runs every check against the plugin at path and reports each
// outcome to progress as it finishes. It is what `mcpruntime plugins check`
// prints.
func Report(ctx context.Context, path string, progress func(Result), opts ...Option) ([]Result, error) {
	s, err := New(ctx, path, opts...)
	if err != nil {
		return nil, err
	}
	return s.report(progress), nil
}

// ReportBackend is Report for a backend served in this process.
func ReportBackend(ctx context.Context, backend sdk.Backend, progress func(Result), opts ...Option) ([]Result, error) {
	s, err := NewBackend(ctx, backend, opts...)
	if err != nil {
		return nil, err
	}
	return s.report(progress), nil
}

func (s *Suite) report(progress func(Result)) []Result {
	defer s.Close()
	var out []Result
	for _, c := range s.opts.checks() {
		start := time.Now()
		err := c.Run(s)
		r := Result{Name: c.Name, Doc: c.Doc, Passed: err == nil, Duration: time.Since(start)}
		if reason, ok := IsSkip(err); ok {
			r.Passed, r.Skipped, r.Error = true, true, reason
		} else if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
	}
	return out
}
