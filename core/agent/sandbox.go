package agent

import (
	"context"
	"time"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Sandbox is the session a run's code executes in: one of an in-process
// manager (ManagerSandbox) or one the workspace daemon holds.
type Sandbox interface {
	// ID is the session's id; Backend its backend's name.
	ID() string
	Backend() string
	// Exec runs code in the session (timeout 0: the backend's limit),
	// streaming its output to emit.
	Exec(ctx context.Context, code string, timeout time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, error)
}

// ManagerSandbox is session s of the in-process manager m.
func ManagerSandbox(m *session.Manager, s *session.Session) Sandbox {
	return managerSandbox{m: m, s: s}
}

type managerSandbox struct {
	m *session.Manager
	s *session.Session
}

func (x managerSandbox) ID() string      { return x.s.ID }
func (x managerSandbox) Backend() string { return x.s.Backend }

func (x managerSandbox) Exec(ctx context.Context, code string, timeout time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	return x.m.Exec(ctx, x.s, code, timeout, emit)
}
