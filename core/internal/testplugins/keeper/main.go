// Command keeper is a backend whose sessions outlive its process by
// design, for the tests of recovery after a plugin restart. Its "sandboxes"
// are files in the plugin's state directory holding a session's variables,
// so a restarted keeper can adopt them in RecoverSessions.
//
// Code is one statement a line:
//
//	set NAME VALUE   assign a variable
//	print NAME       print it (NameError when it is not set)
//	touch FILE       create FILE in the workspace
//	sleep DURATION   wait (e.g. 60s), or until the execution is cancelled
//	# ...            a comment
//
// Config: recover (bool, default true) turns recovery off, so the restarted
// plugin reports every session not recovered. With KEEPER_PROTOCOL=1 in its
// environment the plugin speaks plugin protocol 1 only, as one built with
// an older sdk would.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

type backend struct {
	sdk.NoSnapshots
	protocol int

	mu       sync.Mutex
	dir      string
	recover  bool
	sessions map[string]*session
}

type session struct {
	workspace string
	vars      map[string]string
}

func (b *backend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name: "keeper", Version: "0.0.1", ProtocolVersions: []int{b.protocol},
		Description:  "sessions kept in files across plugin restarts (test plugin)",
		Capabilities: sdk.Capabilities{PersistentSessions: true, Isolation: sdk.IsolationProcess},
	}, nil
}

func (b *backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) {
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "recover", Type: sdk.TypeBool, Default: true, Description: "adopt surviving sessions after a restart"},
	}}, nil
}

func (b *backend) Configure(_ context.Context, cfg *sdk.Config) error {
	c := struct {
		Recover bool `json:"recover"`
	}{Recover: true}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if cfg.StateDir == "" {
		return errors.New("keeper needs a state directory")
	}
	dir := filepath.Join(cfg.StateDir, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dir, b.recover = dir, c.Recover
	return nil
}

func (b *backend) file(id string) string { return filepath.Join(b.dir, id+".json") }

// save writes a session's variables; the caller holds b.mu.
func (b *backend) save(id string, s *session) error {
	data, err := json.Marshal(s.vars)
	if err != nil {
		return fmt.Errorf("encode session %s: %w", id, err)
	}
	if err := os.WriteFile(b.file(id), data, 0o600); err != nil {
		return fmt.Errorf("save session %s: %w", id, err)
	}
	return nil
}

func (b *backend) CreateSession(_ context.Context, spec *sdk.SessionSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return sdk.ErrNotConfigured
	}
	if _, ok := b.sessions[spec.ID]; ok {
		return fmt.Errorf("%w: %s", sdk.ErrSessionExists, spec.ID)
	}
	s := &session{workspace: spec.Workspace, vars: map[string]string{}}
	if err := b.save(spec.ID, s); err != nil {
		return err
	}
	b.sessions[spec.ID] = s
	return nil
}

// RecoverSessions adopts the sessions whose files survived, and records
// which sessions it was offered (recover.log in the state directory).
func (b *backend) RecoverSessions(_ context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, len(specs))
	out := make([]sdk.RecoveredSession, len(specs))
	for i, spec := range specs {
		ids[i] = spec.ID
		out[i].ID = spec.ID
		if !b.recover {
			out[i].Reason = "recovery is turned off"
			os.Remove(b.file(spec.ID))
			continue
		}
		data, err := os.ReadFile(b.file(spec.ID))
		if err != nil {
			out[i].Reason = "no saved state: " + err.Error()
			continue
		}
		s := &session{workspace: spec.Workspace, vars: map[string]string{}}
		if err := json.Unmarshal(data, &s.vars); err != nil {
			out[i].Reason = "saved state unreadable: " + err.Error()
			continue
		}
		b.sessions[spec.ID] = s
		out[i].Recovered = true
	}
	f, err := os.OpenFile(filepath.Join(filepath.Dir(b.dir), "recover.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recover log: %w", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, strings.Join(ids, " ")); err != nil {
		return nil, fmt.Errorf("recover log: %w", err)
	}
	return out, nil
}

func (b *backend) Execute(ctx context.Context, req *sdk.ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	b.mu.Lock()
	s, ok := b.sessions[req.SessionID]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, req.SessionID)
	}
	start := time.Now()
	for _, line := range strings.Split(req.Code, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		fail := func(kind sdk.ErrorKind, msg string) (*sdk.ExecResult, error) {
			return &sdk.ExecResult{ExitCode: 1, Error: kind, Message: msg, Duration: time.Since(start)}, nil
		}
		switch {
		case f[0] == "set" && len(f) == 3:
			b.mu.Lock()
			s.vars[f[1]] = f[2]
			err := b.save(req.SessionID, s)
			b.mu.Unlock()
			if err != nil {
				return nil, err
			}
		case f[0] == "print" && len(f) == 2:
			b.mu.Lock()
			v, ok := s.vars[f[1]]
			b.mu.Unlock()
			if !ok {
				return fail(sdk.ErrorException, fmt.Sprintf("NameError: name '%s' is not defined", f[1]))
			}
			emit(sdk.Event{Kind: sdk.EventStdout, Data: []byte(v + "\n")})
		case f[0] == "touch" && len(f) == 2:
			if err := os.WriteFile(filepath.Join(s.workspace, filepath.Base(f[1])), nil, 0o644); err != nil {
				return fail(sdk.ErrorException, err.Error())
			}
		case f[0] == "sleep" && len(f) == 2:
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return fail(sdk.ErrorSyntax, err.Error())
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return fail(sdk.ErrorTimeout, "cancelled")
			}
		default:
			return fail(sdk.ErrorSyntax, "SyntaxError: "+line)
		}
	}
	return &sdk.ExecResult{Duration: time.Since(start)}, nil
}

func (b *backend) DestroySession(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.sessions, id)
	if err := os.Remove(b.file(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("destroy session %s: %w", id, err)
	}
	return nil
}

func (b *backend) Health(context.Context) (*sdk.Health, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &sdk.Health{Healthy: true, Sessions: len(b.sessions)}, nil
}

func main() {
	b := &backend{protocol: sdk.ProtocolVersion, sessions: map[string]*session{}}
	if os.Getenv("KEEPER_PROTOCOL") != "1" {
		host.ServeVersion(b, sdk.ProtocolVersion)
		return
	}
	// As a plugin built against a protocol-1 sdk: no RecoverSessions on
	// the wire (the core does not call it).
	b.protocol = 1
	host.ServeVersion(b, 1)
}
