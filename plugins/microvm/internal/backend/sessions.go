package backend

import (
	"context"
	"errors"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// errNotStarted frees a reserved session id whose start failed.
var errNotStarted = errors.New("session did not start")

func (b *Backend) reserve(id string) error { return b.sessions.Reserve(id) }

// settle ends a reservation: with the started session, or nil to free the id.
func (b *Backend) settle(id string, s *session) {
	// Settle returns the error it is given: nothing to handle.
	if s == nil {
		_ = b.sessions.Settle(id, nil, errNotStarted)
		return
	}
	_ = b.sessions.Settle(id, s, nil)
}

func (b *Backend) get(id string) (*session, error) { return b.sessions.Get(id) }

// CreateSession implements sdk.Backend: a pooled VM is given the
// session's settings, libraries and workspace, and its kernel the
// session's set-up.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	if _, err := b.configured(); err != nil {
		return err
	}
	if err := b.reserve(spec.ID); err != nil {
		return err
	}
	s, err := b.newSession(spec)
	if err != nil {
		b.settle(spec.ID, nil)
		return err
	}
	if err := s.Session.Start(ctx); err != nil {
		s.destroy(ctx)
		b.settle(spec.ID, nil)
		return err
	}
	b.settle(spec.ID, s)
	return nil
}

// Execute implements sdk.Backend.
func (b *Backend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	return kernel.Execute(ctx, &b.sessions, req, emit)
}

// DestroySession implements sdk.Backend.
func (b *Backend) DestroySession(ctx context.Context, id string) error {
	s, err := b.sessions.Remove(id)
	if err != nil {
		return err
	}
	s.destroy(ctx)
	return nil
}
