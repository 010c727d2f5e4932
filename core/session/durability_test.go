package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/internal/sessionreg"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Sessions across the end of the core process (the session registry,
// hibernation) and management calls while code runs, with the keeper test
// plugin, whose sessions live in files and so outlive the core.

// process is one core process of a project: a manager with a registry.
type process struct {
	m   *Manager
	reg *sessionreg.Registry
}

// startProcess starts a "core process" for cfg: a manager with the
// registry in the project's state dir.
func startProcess(t *testing.T, cfg *config.Config, c Checkpointer) *process {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Info, Output: testWriter{t}})
	m := New(cfg, pluginhost.New(cfg, logger), nil, logger)
	reg, err := sessionreg.Open(filepath.Join(cfg.StateDir, "sessions", "test"))
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		m.SetCheckpointer(c)
	}
	if err := m.UseRegistry(reg, "test server"); err != nil {
		t.Fatal(err)
	}
	return &process{m: m, reg: reg}
}

// die ends the process as SIGKILL would: its plugins are killed and its
// registry lock released, and nothing is written.
func (p *process) die() {
	p.m.host.Shutdown()
	p.reg.Close()
}

func keeperConfig(t *testing.T, recover bool) *config.Config {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf("runtime {\n  backend = \"keeper\"\n  plugin_dir = %q\n}\nsandbox \"keeper\" {\n  config {\n    recover = %v\n  }\n}\n", pluginDir(t), recover)
	cfg, err := config.Parse([]byte(src), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestUnknownSessionIsNotCreatedWhenExistingIsAsked(t *testing.T) {
	m, _ := newManager(t, "keeper", "")
	if _, err := m.Open(context.Background(), Options{ID: "typo", Existing: true}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Fatalf("opening an unknown session with Existing: %v", err)
	}
	if len(m.List()) != 0 {
		t.Fatalf("a session was created: %v", m.List())
	}
	open(t, m, "known")
	if _, err := m.Open(context.Background(), Options{ID: "known", Existing: true}); err != nil {
		t.Fatalf("opening a known session with Existing: %v", err)
	}
}

// Listing and status read a session without waiting for the execution
// running in it; closing it cancels that execution instead of waiting.
func TestCloseCancelsTheRunningExecution(t *testing.T) {
	m, cfg := newManager(t, "keeper", "")
	a := open(t, m, "a")
	run(t, m, a, "set x 1")
	type outcome struct {
		res *sdk.ExecResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := m.Exec(context.Background(), a, "touch running\nsleep 2s\ntouch after", 0, nil)
		done <- outcome{res, err}
	}()
	waitFile(t, filepath.Join(cfg.Workspace, "running"))

	t0 := time.Now()
	for _, s := range m.List() {
		_, _, _ = s.Execs(), s.State(), s.Capabilities()
	}
	if d := time.Since(t0); d > 100*time.Millisecond {
		t.Errorf("listing took %s while code ran", d)
	}
	if a.Execs() != 1 || a.State() != StateLive {
		t.Errorf("execs %d state %s", a.Execs(), a.State())
	}

	t0 = time.Now()
	if err := m.Close(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("closing a busy session took %s", d)
	}
	select {
	case o := <-done:
		if !errors.Is(o.err, ErrSessionClosed) {
			t.Fatalf("the cancelled execution: %+v %v", o.res, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled execution did not return")
	}
	// The code stopped: the file it would write after its sleep never
	// appears (watched for longer than the sleep).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(cfg.Workspace, "after")); err == nil {
			t.Fatal("the code of a closed session ran on")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := m.Exec(context.Background(), a, "print x", 0, nil); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("executing in a closed session: %v", err)
	}
}

// A core process that dies leaves its sessions in the registry: the next
// one offers them to the plugin's first start, and the keeper recovers
// them with their variables; with recovery off, the next execution says
// state_lost and why.
func TestSessionsOutliveTheCoreProcess(t *testing.T) {
	for _, recover := range []bool{true, false} {
		t.Run(fmt.Sprintf("recover=%v", recover), func(t *testing.T) {
			cfg := keeperConfig(t, recover)
			first := startProcess(t, cfg, nil)
			a := open(t, first.m, "a")
			run(t, first.m, a, "set x 41")
			first.die()

			next := startProcess(t, cfg, nil)
			t.Cleanup(func() { next.m.Shutdown(context.Background()) })
			if _, err := next.m.Open(context.Background(), Options{ID: "fresh", Existing: true}); !errors.Is(err, sdk.ErrSessionNotFound) {
				t.Fatalf("an unknown id: %v", err)
			}
			a, err := next.m.Open(context.Background(), Options{ID: "a", Existing: true})
			if err != nil {
				t.Fatalf("the session of the dead process is unknown to the next: %v", err)
			}
			if a.State() != StatePending || a.Execs() != 1 {
				t.Errorf("before its plugin started: state %s execs %d", a.State(), a.Execs())
			}
			res, out := run(t, next.m, a, "print x")
			if recover {
				if out != "41\n" || res.StateLost || res.Message != "" {
					t.Fatalf("recovered session: %q %+v", out, res)
				}
				return
			}
			if !res.StateLost || !strings.Contains(res.Message, "test server restarted") || !strings.Contains(res.Message, "variables were lost") {
				t.Fatalf("the first execution after the restart: %q %+v", out, res)
			}
			if res, _ := run(t, next.m, a, "set x 2"); res.StateLost {
				t.Fatalf("state_lost reported twice: %+v", res)
			}
		})
	}
}

// fakeCheckpointer saves the keeper's variable x in the checkpoint itself
// and claims a variable g could not be carried.
type fakeCheckpointer struct {
	m         *Manager
	discarded []string
}

func (f *fakeCheckpointer) Checkpoint(ctx context.Context, s *Session) (*sessionreg.Checkpoint, error) {
	out, res, err := f.m.ExecHeld(ctx, s, "print x")
	if err != nil || !res.OK() {
		return nil, fmt.Errorf("save x: %v %+v", err, res)
	}
	return &sessionreg.Checkpoint{State: strings.TrimSpace(out), Saved: []string{"x"}, NotCarried: map[string]string{"g": "cannot pickle 'generator' object"}}, nil
}

func (f *fakeCheckpointer) Restore(ctx context.Context, s *Session, cp *sessionreg.Checkpoint) (map[string]string, error) {
	if _, res, err := f.m.ExecHeld(ctx, s, "set x "+cp.State); err != nil || !res.OK() {
		return nil, fmt.Errorf("load x: %v %+v", err, res)
	}
	return cp.NotCarried, nil
}

func (f *fakeCheckpointer) Discard(_ context.Context, s *Session, _ *sessionreg.Checkpoint) {
	f.discarded = append(f.discarded, s.ID)
}

// A process that stops gracefully hibernates its sessions; the next
// restores each on its next execution, into the same id, and says what
// was not carried.
func TestHibernatedSessionWakesInTheNextProcess(t *testing.T) {
	// Recovery off: the variable can only come back from the checkpoint.
	cfg := keeperConfig(t, false)
	first := startProcess(t, cfg, nil)
	first.m.SetCheckpointer(&fakeCheckpointer{m: first.m})
	a := open(t, first.m, "a")
	run(t, first.m, a, "set x 41")
	open(t, first.m, "idle") // nothing ran in it: nothing to carry
	first.m.Hibernate(context.Background(), "the test server exited after 5s idle")
	first.m.Shutdown(context.Background())

	next := startProcess(t, cfg, nil)
	fc := &fakeCheckpointer{m: next.m}
	next.m.SetCheckpointer(fc)
	t.Cleanup(func() { next.m.Shutdown(context.Background()) })
	a, err := next.m.Open(context.Background(), Options{ID: "a", Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.State() != StateHibernated {
		t.Errorf("state %s, want hibernated", a.State())
	}
	res, out := run(t, next.m, a, "print x")
	if out != "41\n" || res.StateLost || !res.OK() {
		t.Fatalf("woken session: %q %+v", out, res)
	}
	for _, want := range []string{"hibernated", "exited after 5s idle", "not carried: g (cannot pickle"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("note %q lacks %q", res.Message, want)
		}
	}
	if len(fc.discarded) != 1 || a.State() != StateLive {
		t.Errorf("checkpoint discarded for %v; state %s", fc.discarded, a.State())
	}
	if res, _ := run(t, next.m, a, "print x"); res.Message != "" {
		t.Errorf("the note was given twice: %+v", res)
	}
	idle, err := next.m.Open(context.Background(), Options{ID: "idle", Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := run(t, next.m, idle, "set y 1"); res.StateLost {
		t.Errorf("a session that had run nothing reports state_lost: %+v", res)
	}
}

// A failed checkpoint is never a silent loss: the next execution says
// state_lost and why.
func TestFailedCheckpointReportsStateLost(t *testing.T) {
	cfg := keeperConfig(t, false)
	first := startProcess(t, cfg, nil) // no checkpointer: the checkpoint fails
	a := open(t, first.m, "a")
	run(t, first.m, a, "set x 41")
	first.m.Shutdown(context.Background())

	next := startProcess(t, cfg, nil)
	t.Cleanup(func() { next.m.Shutdown(context.Background()) })
	a, err := next.m.Open(context.Background(), Options{ID: "a", Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := run(t, next.m, a, "print x")
	if !res.StateLost || !strings.Contains(res.Message, "saving this session's state failed") {
		t.Fatalf("after a failed checkpoint: %+v", res)
	}
}

// Closing a session removes it from the registry: the next process does
// not know it.
func TestClosedSessionIsForgotten(t *testing.T) {
	cfg := keeperConfig(t, true)
	first := startProcess(t, cfg, nil)
	open(t, first.m, "a")
	if err := first.m.Close(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	first.die()
	next := startProcess(t, cfg, nil)
	t.Cleanup(func() { next.m.Shutdown(context.Background()) })
	if _, err := next.m.Open(context.Background(), Options{ID: "a", Existing: true}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Fatalf("a closed session came back: %v", err)
	}
}
