package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// LocalSessions implements the session half of sdk.Backend for backends that
// run one kernel child process per session on the plugin's host: create,
// execute (with restart of dead kernels), destroy, health and close. Embed
// it and add Info, ConfigSpec and Configure.
//
// Such a backend cannot place files at sandbox paths, so mounts below
// sdk.GuestLib (skills, tool stubs) are linked into a private import root
// per session, which the kernel is given in its Setup.
type LocalSessions struct {
	sdk.NoSnapshots

	// Command builds the kernel command for a session. env holds the
	// variables the kernel needs at start; add them to the command.
	Command func(spec *sdk.SessionSpec, env []string) (*exec.Cmd, error)
	Logger  hclog.Logger

	sessions sdk.Sessions[*localSession]
}

type localSession struct {
	*Session
	lib string
}

// startEnv keeps the kernel from putting the sandbox library path of other
// backends (sdk.GuestLib) on sys.path: on a host it is just a directory
// anyone may have created.
var startEnv = []string{"MCPRUNTIME_LIB="}

// CreateSession implements sdk.Backend.
func (s *LocalSessions) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	if err := s.sessions.Reserve(spec.ID); err != nil {
		return err
	}
	sess, err := s.start(ctx, spec)
	return s.sessions.Settle(spec.ID, sess, err)
}

func (s *LocalSessions) start(ctx context.Context, spec *sdk.SessionSpec) (*localSession, error) {
	if s.Command == nil {
		return nil, sdk.ErrNotConfigured
	}
	mounts, err := sdk.LibMounts(spec)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	lib, err := linkLib(mounts)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	logger := s.logger()
	sess := NewSession(SessionOptions{
		ID:        spec.ID,
		Transport: &commandTransport{command: func() (*exec.Cmd, error) { return s.Command(spec, startEnv) }, logger: logger},
		Setup: Setup{
			Env: spec.Env, Cwd: spec.Workspace, ImportPaths: []string{lib},
			MemoryBytes: spec.Limits.MemoryBytes,
		},
		Limits: spec.Limits, Host: spec.Host, Logger: logger,
	})
	if err := sess.Start(ctx); err != nil {
		os.RemoveAll(lib)
		return nil, err
	}
	return &localSession{Session: sess, lib: lib}, nil
}

// linkLib makes a private import root holding a link per library mount.
func linkLib(mounts []sdk.LibMount) (string, error) {
	lib, err := os.MkdirTemp("", "mcpruntime-lib-")
	if err != nil {
		return "", fmt.Errorf("import root: %w", err)
	}
	for _, m := range mounts {
		dst := filepath.Join(lib, m.Rel)
		err := os.MkdirAll(filepath.Dir(dst), 0o755)
		if err == nil {
			err = os.Symlink(m.Source, dst)
		}
		if err != nil {
			os.RemoveAll(lib)
			return "", fmt.Errorf("mount %s: %w", m.Rel, err)
		}
	}
	return lib, nil
}

// Execute implements sdk.Backend.
func (s *LocalSessions) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	return Execute(ctx, &s.sessions, req, emit)
}

// DestroySession implements sdk.Backend.
func (s *LocalSessions) DestroySession(ctx context.Context, id string) error {
	sess, err := s.sessions.Remove(id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(sess.lib)
	return sess.Close(ctx)
}

// Health implements sdk.Backend.
func (s *LocalSessions) Health(context.Context) (*sdk.Health, error) {
	return &sdk.Health{Healthy: s.Command != nil, Sessions: s.sessions.Len()}, nil
}

// Close destroys every session.
func (s *LocalSessions) Close(ctx context.Context) error {
	for _, sess := range s.sessions.TakeAll() {
		os.RemoveAll(sess.lib)
		if err := sess.Close(ctx); err != nil {
			s.logger().Warn("close session", "error", err)
		}
	}
	return nil
}

func (s *LocalSessions) logger() hclog.Logger {
	if s.Logger == nil {
		return hclog.NewNullLogger()
	}
	return s.Logger
}

// commandTransport starts a kernel as a child process from a command.
type commandTransport struct {
	command func() (*exec.Cmd, error)
	logger  hclog.Logger
}

func (t *commandTransport) Start(ctx context.Context) (Process, error) {
	cmd, err := t.command()
	if err != nil {
		return nil, fmt.Errorf("kernel command: %w", err)
	}
	return StartChild(ctx, cmd, ChildOptions{Logger: t.logger})
}

// Executor is a backend's session that runs code: one embedding *Session.
type Executor interface {
	Exec(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error)
}

// Execute is sdk.Backend's Execute for a backend whose session table holds
// Executors: it finds the session the request names and runs the code.
func Execute[T Executor](ctx context.Context, table *sdk.Sessions[T], req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s, err := table.Get(req.SessionID)
	if err != nil {
		return nil, err
	}
	return s.Exec(ctx, req, emit)
}
