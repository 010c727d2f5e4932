package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// launchIn starts the plugin with its own state dir.
func launchIn(t *testing.T, state string, pool int) *host.Plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, pluginPath(t))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Kill)
	configure(t, p, state, pool)
	return p
}

func configure(t *testing.T, p *host.Plugin, state string, pool int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Configure(ctx, &sdk.Config{JSON: json.RawMessage(`{}`), PoolSize: pool, StateDir: state}); err != nil {
		t.Fatalf("configure: %v", err)
	}
}

// runDirsOf lists the run dirs of plugin process pid in state (their owner
// ids start with the pid).
func runDirsOf(state string, pid int) []string {
	m, _ := filepath.Glob(filepath.Join(state, fmt.Sprintf("run-%d-*", pid)))
	return m
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gone(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return false
		}
	}
	return true
}

// TestRunDirOwnership: a SIGKILLed plugin's run dir is removed by the next
// plugin to start on the same state dir, while a live plugin's (with a
// session) is not touched; a reconfigured plugin removes its previous run
// dir once the sessions that still use it are gone.
func TestRunDirOwnership(t *testing.T) {
	state := t.TempDir()
	live := launchIn(t, state, 0)
	liveSession := newSession(t, live, sdk.SessionSpec{})
	expectOK(t, live, liveSession, "x = 41", "")
	liveDirs := runDirsOf(state, live.Pid())
	if len(liveDirs) != 1 {
		t.Fatalf("run dirs of the live plugin: %v", liveDirs)
	}

	killed := launchIn(t, state, 1)
	id := newSession(t, killed, sdk.SessionSpec{})
	expectOK(t, killed, id, "print(1)", "1\n")
	dead := runDirsOf(state, killed.Pid())
	if len(dead) != 1 {
		t.Fatalf("run dirs of the plugin to kill: %v", dead)
	}
	if err := syscall.Kill(-killed.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for !killed.Exited() {
		time.Sleep(10 * time.Millisecond)
	}
	if gone(dead...) {
		t.Fatal("a SIGKILLed plugin cannot remove its run dir; expected it before the next start")
	}

	next := launchIn(t, state, 0)
	waitUntil(t, "the killed plugin's run dir to be swept", func() bool { return gone(dead...) })
	if gone(liveDirs...) {
		t.Fatal("the live plugin's run dir was swept")
	}
	expectOK(t, live, liveSession, "print(x + 1)", "42\n")
	expectOK(t, live, newSession(t, live, sdk.SessionSpec{}), "print(2)", "2\n")

	// Reconfiguring: the old run dir stays while a session uses it, and
	// goes with that session.
	first := runDirsOf(state, next.Pid())
	if len(first) != 1 {
		t.Fatalf("run dirs: %v", first)
	}
	s1 := newSession(t, next, sdk.SessionSpec{})
	configure(t, next, state, 0)
	if gone(first...) {
		t.Fatal("the previous run dir went while a session uses it")
	}
	expectOK(t, next, s1, "print('still')", "still\n")
	if err := next.DestroySession(context.Background(), s1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the previous run dir to go with its last session", func() bool { return gone(first...) })
	// Without sessions it goes at once.
	second := runDirsOf(state, next.Pid())
	configure(t, next, state, 0)
	if !gone(second...) || len(runDirsOf(state, next.Pid())) != 1 {
		t.Fatalf("after a reconfigure without sessions: %v -> %v", second, runDirsOf(state, next.Pid()))
	}

	// A clean shutdown leaves no run dir and no lock.
	next.Kill()
	live.Kill()
	left, _ := filepath.Glob(filepath.Join(state, "run-*"))
	locks, _ := filepath.Glob(filepath.Join(state, "owners", "*"))
	if len(left) > 0 || len(locks) > 0 {
		t.Fatalf("left after clean shutdowns: %v %v", left, locks)
	}
}
