package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// killPlugin SIGKILLs the plugin process alone (as a crash would) and
// waits until it is gone.
func killPlugin(t *testing.T, h *harness) {
	t.Helper()
	if err := syscall.Kill(h.p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill the plugin: %v", err)
	}
	waitFor(t, "the plugin to exit", 15*time.Second, h.p.Exited)
}

// sessionVMMs maps the VMM pids under a run root to whether their VM
// served a session (its directory records one).
func sessionVMMs(root string) map[int]bool {
	out := map[int]bool{}
	pids, _ := filepath.Glob(filepath.Join(root, "*", "*", "vmm.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !slices.Contains(ourVMMs(), pid) {
			continue
		}
		_, err = os.Stat(filepath.Join(filepath.Dir(p), "session.json"))
		out[pid] = err == nil
	}
	return out
}

func alivePid(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestRecoverAfterPluginKill: the VM of a session outlives its plugin's
// SIGKILL; a new plugin recovers the session with its variables
// (RecoverSessions), and the dead plugin's other VMs (its pool) go at
// once.
func TestRecoverAfterPluginKill(t *testing.T) {
	needQEMU(t)
	state := t.TempDir()
	root := runRootOf(state)
	h := launch(t, nil, state)
	id := h.session(sdk.Limits{})
	h.expect(id, "x = 41", "")
	vms := sessionVMMs(root)
	var sessionVM int
	for pid, isSession := range vms {
		if isSession {
			sessionVM = pid
		}
	}
	if sessionVM == 0 {
		t.Fatalf("no session VM found under %s: %v", root, vms)
	}
	killPlugin(t, h)
	for pid := range vms {
		if !alivePid(pid) {
			t.Fatalf("VMM %d died with the plugin", pid)
		}
	}

	h2 := launch(t, nil, state)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: sdk.Limits{Timeout: 120 * time.Second}}
	got, err := h2.p.RecoverSessions(ctx, []*sdk.SessionSpec{spec, {ID: "never-created", Workspace: h.ws}})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if len(got) != 2 || !got[0].Recovered || got[0].ID != id || got[1].Recovered || got[1].Reason == "" {
		t.Fatalf("recover: %+v", got)
	}
	res, out := h2.exec(id, "print(x + 1)")
	if !res.OK() || out != "42\n" || res.StateLost {
		t.Fatalf("after recovery: ok=%v out=%q state_lost=%v (%s)", res.OK(), out, res.StateLost, res.Message)
	}
	if !alivePid(sessionVM) {
		t.Fatal("the recovered session runs in another VM")
	}
	for pid, isSession := range vms {
		if !isSession {
			waitFor(t, "the dead plugin's pooled VM to be removed", 15*time.Second, func() bool { return !alivePid(pid) })
		}
	}
	waitRootHolds(t, root, h2.p.Pid())
	// The recovered session is a whole session: files, a kernel restart.
	h2.expect(id, "open('after.txt', 'w').write('ok'); print(open('after.txt').read())", "ok\n")
	if b, err := os.ReadFile(filepath.Join(h.ws, "after.txt")); err != nil || string(b) != "ok" {
		t.Fatalf("workspace file after recovery: %q %v", b, err)
	}
	res, _ = h2.exec(id, "import os; os._exit(3)")
	if res.Error != sdk.ErrorKernelDied || !res.StateLost {
		t.Fatalf("kernel exit after recovery: %+v", res)
	}
	h2.expect(id, "print('x' in globals())", "False\n")
	if err := h2.p.DestroySession(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recovered VM to be destroyed", 15*time.Second, func() bool { return !alivePid(sessionVM) })
}

// TestRecoverGrace: without a RecoverSessions call, the session VMs of a
// SIGKILLed plugin stay for the recovery grace (its pooled VMs go at
// once), then the sweep removes them.
func TestRecoverGrace(t *testing.T) {
	needQEMU(t)
	state := t.TempDir()
	root := runRootOf(state)
	h := launch(t, nil, state)
	id := h.session(sdk.Limits{})
	h.expect(id, "x = 1", "")
	vms := sessionVMMs(root)
	// The grace starts at the first sweep that sees the plugin dead, which
	// may be any plugin's on the host: at the earliest, when it dies.
	start := time.Now()
	killPlugin(t, h)
	const grace = 20 * time.Second
	h2 := launch(t, map[string]any{"recover_grace": grace.String()}, state)
	for pid, isSession := range vms {
		if isSession {
			if !alivePid(pid) && time.Since(start) < grace {
				t.Fatalf("session VM %d removed before the grace ended", pid)
			}
			continue
		}
		waitFor(t, "the dead plugin's pooled VM to be removed", 15*time.Second, func() bool { return !alivePid(pid) })
	}
	for pid, isSession := range vms {
		if isSession {
			waitFor(t, "the session VM to be removed after the grace", grace+30*time.Second, func() bool { return !alivePid(pid) })
			if took := time.Since(start); took < grace {
				t.Fatalf("session VM removed after %s, before the grace of %s", took, grace)
			}
		}
	}
	waitRootHolds(t, root, h2.p.Pid())
	got, err := h2.p.RecoverSessions(context.Background(), []*sdk.SessionSpec{{ID: id, Workspace: h.ws}})
	if err != nil || len(got) != 1 || got[0].Recovered {
		t.Fatalf("recover after the grace: %+v %v", got, err)
	}
}
