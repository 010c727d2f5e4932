package backend

import (
	"context"
	"fmt"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// reserve claims a session id before the (slow) start.
func (b *Backend) reserve(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.sessions[id]; ok {
		return fmt.Errorf("%w: %s", sdk.ErrSessionExists, id)
	}
	b.sessions[id] = nil
	return nil
}

func (b *Backend) settle(id string, s *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s == nil {
		delete(b.sessions, id)
		return
	}
	b.sessions[id] = s
}

func (b *Backend) get(id string) (*session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.sessions[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, id)
}

// CreateSession implements sdk.Backend: a pooled VM is given the
// session's settings, libraries and workspace.
func (b *Backend) CreateSession(ctx context.Context, spec *sdk.SessionSpec) error {
	p, err := b.configured()
	if err != nil {
		return err
	}
	if err := b.reserve(spec.ID); err != nil {
		return err
	}
	s := b.newSession(spec)
	v, err := p.get(ctx)
	if err != nil {
		b.settle(spec.ID, nil)
		return fmt.Errorf("session %s: %w", spec.ID, err)
	}
	if err := s.attach(ctx, v, false); err != nil {
		v.destroy()
		b.settle(spec.ID, nil)
		return fmt.Errorf("session %s: %w", spec.ID, err)
	}
	b.settle(spec.ID, s)
	return nil
}

// Execute implements sdk.Backend.
func (b *Backend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	s, err := b.get(req.SessionID)
	if err != nil {
		return nil, err
	}
	return s.execute(ctx, req, emit)
}

// DestroySession implements sdk.Backend.
func (b *Backend) DestroySession(_ context.Context, id string) error {
	s, err := b.get(id)
	if err != nil {
		return err
	}
	b.settle(id, nil)
	s.destroy()
	return nil
}
