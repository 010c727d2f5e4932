package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

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
// per session, which the kernel finds through MCPRUNTIME_LIB.
type LocalSessions struct {
	sdk.NoSnapshots

	// Command builds the kernel command for a session. env already holds
	// the variables the kernel needs; add them to the command.
	Command func(spec *sdk.SessionSpec, env []string) (*exec.Cmd, error)
	Logger  hclog.Logger

	sessions sdk.Sessions[*localSession]
}

type localSession struct {
	spec *sdk.SessionSpec
	k    *Local
	lib  string
}

// KernelEnv is the environment the kernel reads for a session whose
// extra import directory is lib.
func KernelEnv(spec *sdk.SessionSpec, lib string) []string {
	env := []string{
		"MCPRUNTIME_LIB=" + lib,
		"MCPRUNTIME_WORKSPACE=" + spec.Workspace,
		"MCPRUNTIME_MEMORY_LIMIT=" + strconv.FormatInt(spec.Limits.MemoryBytes, 10),
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return env
}

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
	lib, err := os.MkdirTemp("", "mcpruntime-lib-")
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	for _, m := range spec.Mounts {
		if rel, ok := strings.CutPrefix(m.Target, sdk.GuestLib+"/"); ok {
			if err := os.Symlink(m.Source, filepath.Join(lib, rel)); err != nil {
				os.RemoveAll(lib)
				return nil, fmt.Errorf("session %s: mount %s: %w", spec.ID, m.Target, err)
			}
		}
	}
	env := KernelEnv(spec, lib)
	k, err := StartLocal(ctx, LocalOptions{
		Command: func() (*exec.Cmd, error) { return s.Command(spec, env) },
		Logger:  s.Logger,
	})
	if err != nil {
		os.RemoveAll(lib)
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	return &localSession{spec: spec, k: k, lib: lib}, nil
}

// Execute implements sdk.Backend.
func (s *LocalSessions) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	sess, err := s.sessions.Get(req.SessionID)
	if err != nil {
		return nil, err
	}
	return sess.k.Exec(ctx, req.Code, sess.spec.Limits, req.Timeout, sess.spec.Host, emit)
}

// DestroySession implements sdk.Backend.
func (s *LocalSessions) DestroySession(ctx context.Context, id string) error {
	sess, err := s.sessions.Remove(id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(sess.lib)
	return sess.k.Close(ctx)
}

// Health implements sdk.Backend.
func (s *LocalSessions) Health(context.Context) (*sdk.Health, error) {
	return &sdk.Health{Healthy: s.Command != nil, Sessions: s.sessions.Len()}, nil
}

// Close destroys every session.
func (s *LocalSessions) Close(ctx context.Context) error {
	for _, sess := range s.sessions.TakeAll() {
		os.RemoveAll(sess.lib)
		_ = sess.k.Close(ctx)
	}
	return nil
}
