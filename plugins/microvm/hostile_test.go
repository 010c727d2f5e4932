package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

// harness is one launched plugin process with helpers for sessions.
type harness struct {
	t     *testing.T
	p     *host.Plugin
	state string
	ws    string
	n     int
}

func launch(t *testing.T, config map[string]any, state string) *harness {
	t.Helper()
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, bin, host.WithStartTimeout(time.Minute))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Kill)
	if state == "" {
		state = t.TempDir()
	}
	js, _ := json.Marshal(config)
	if err := p.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: state}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return &harness{t: t, p: p, state: state, ws: t.TempDir()}
}

func (h *harness) session(limits sdk.Limits) string {
	h.t.Helper()
	h.n++
	id := fmt.Sprintf("%s-%d", strings.ReplaceAll(h.t.Name(), "/", "-"), h.n)
	if limits.Timeout == 0 {
		limits.Timeout = 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := h.p.CreateSession(ctx, &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: limits}); err != nil {
		h.t.Fatalf("create session: %v", err)
	}
	return id
}

func (h *harness) exec(id, code string) (*sdk.ExecResult, string) {
	h.t.Helper()
	res, out, err := execute(h.p, id, code, sdk.EventStdout, sdk.EventStderr)
	if err != nil {
		h.t.Fatalf("execute %q: %v", code, err)
	}
	return res, out
}

// execute runs code in a session of be (the plugin over gRPC, or a backend
// in the test process) and collects the output of the given kinds.
func execute(be sdk.Backend, id, code string, kinds ...sdk.EventKind) (*sdk.ExecResult, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := be.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: code}, func(e sdk.Event) {
		if slices.Contains(kinds, e.Kind) {
			out.Write(e.Data)
		}
	})
	return res, out.String(), err
}

func (h *harness) expect(id, code, want string) {
	h.t.Helper()
	res, out := h.exec(id, code)
	if !res.OK() || out != want {
		h.t.Fatalf("%q: ok=%v out=%q want %q (%s)", code, res.OK(), out, want, res.Message)
	}
}

// TestGuest covers the acceptance check (the guest kernel's release) and
// hostile code inside the guest: each must leave the host and the other
// sessions healthy and the hit session usable.
func TestGuest(t *testing.T) {
	needQEMU(t)
	h := launch(t, nil, "")
	bystander := h.session(sdk.Limits{})
	h.expect(bystander, "keep = 'me'", "")

	t.Run("guest_kernel_release", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(cli.DefaultImageDir(), "current.json"))
		if err != nil {
			t.Fatal(err)
		}
		var im struct{ Release string }
		_ = json.Unmarshal(raw, &im)
		var uts syscall.Utsname
		_ = syscall.Uname(&uts)
		id := h.session(sdk.Limits{})
		_, out := h.exec(id, "import platform; print(platform.release())")
		if strings.TrimSpace(out) != im.Release {
			t.Fatalf("guest release %q, want the image kernel's %q", out, im.Release)
		}
		h.expect(id, "import os; print(os.path.exists('/proc/sysrq-trigger'), os.getcwd())", "True /workspace\n")
	})

	t.Run("no_network", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		h.expect(id, "import os; print(sorted(os.listdir('/sys/class/net')))", "['lo']\n")
	})

	t.Run("guest_kernel_panic", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		h.expect(id, "x = 1", "")
		res, _ := h.exec(id, "open('/proc/sysrq-trigger', 'w').write('c')")
		if res.Error != sdk.ErrorSessionLost || !res.StateLost || !strings.Contains(res.Message, "microVM stopped") {
			t.Fatalf("panic: %+v", res)
		}
		h.expect(id, "print('x' in globals())", "False\n")
	})

	t.Run("agent_crash", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		res, _ := h.exec(id, "import os, signal; os.kill(1, signal.SIGABRT)")
		if res.Error != sdk.ErrorSessionLost || !res.StateLost {
			t.Fatalf("agent crash: %+v", res)
		}
		h.expect(id, "print('back')", "back\n")
	})

	t.Run("fork_bomb", func(t *testing.T) {
		id := h.session(sdk.Limits{Pids: 48})
		code := "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(20)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused', n < 48, type(e).__name__)"
		h.expect(id, code, "refused True BlockingIOError\n")
		h.expect(id, "print('alive')", "alive\n")
	})

	t.Run("memory_exhaustion", func(t *testing.T) {
		// No per-session limit: the VM's own ceiling (the cgroup below the
		// VM memory) stops it; the kernel dies, the VM survives.
		id := h.session(sdk.Limits{})
		res, _ := h.exec(id, "l = []\nwhile True:\n    l.append(bytearray(32 << 20))")
		if res.OK() || res.Message == "" {
			t.Fatalf("memory exhaustion: %+v", res)
		}
		h.expect(id, "print('recovered')", "recovered\n")
	})

	t.Run("uninterruptible_loop", func(t *testing.T) {
		id := h.session(sdk.Limits{Timeout: 3 * time.Second})
		res, _ := h.exec(id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
		if res.Error != sdk.ErrorTimeout || res.ExitCode != 124 || !res.StateLost {
			t.Fatalf("uninterruptible loop: %+v", res)
		}
		h.expect(id, "print('new vm')", "new vm\n")
	})

	// Nothing above touched the first session.
	h.expect(bystander, "print(keep)", "me\n")
}

// TestSnapshotForks: a session is snapshotted, two forks diverge, the
// original continues, and the forks' random streams differ (reseeded).
func TestSnapshotForks(t *testing.T) {
	needQEMU(t)
	h := launch(t, nil, "")
	orig := h.session(sdk.Limits{})
	h.expect(orig, "import random, os\ncounter = 10\nwith open('snap.txt', 'w') as f:\n    f.write('before')", "")
	ctx := context.Background()
	snap, err := h.p.Snapshot(ctx, orig)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if snap.SizeBytes <= 0 {
		t.Fatalf("snapshot size %d", snap.SizeBytes)
	}
	var forks []string
	for i := range 2 {
		id := fmt.Sprintf("fork-%d", i)
		if err := h.p.Restore(ctx, snap.ID, &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: sdk.Limits{Timeout: time.Minute}}); err != nil {
			t.Fatalf("restore: %v", err)
		}
		forks = append(forks, id)
	}
	h.expect(orig, "counter += 100; print(counter)", "110\n")
	h.expect(forks[0], "counter += 1; print(counter)", "11\n")
	h.expect(forks[1], "counter += 2; print(counter)", "12\n")
	h.expect(orig, "print(counter)", "110\n")
	_, r0 := h.exec(forks[0], "print(random.random(), os.urandom(8).hex())")
	_, r1 := h.exec(forks[1], "print(random.random(), os.urandom(8).hex())")
	a, b := strings.Fields(r0), strings.Fields(r1)
	if len(a) != 2 || len(b) != 2 || a[0] == b[0] || a[1] == b[1] {
		t.Fatalf("forks share random state: %q vs %q", r0, r1)
	}
	h.expect(forks[0], "print(open('snap.txt').read())", "before\n")
}

// TestBadInput: broken snapshots and VMMs give clear errors.
func TestBadInput(t *testing.T) {
	needQEMU(t)
	h := launch(t, nil, "")
	id := h.session(sdk.Limits{})
	h.expect(id, "v = 1", "")
	ctx := context.Background()
	snap, err := h.p.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(h.state, "snapshots", snap.ID, "vm.state")
	if err := os.WriteFile(state, []byte("this is not a QEMU migration stream"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = h.p.Restore(ctx, snap.ID, &sdk.SessionSpec{ID: "from-corrupt", Workspace: h.ws})
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("corrupt snapshot: %v", err)
	}
	if err := h.p.Restore(ctx, "0123456789ab", &sdk.SessionSpec{ID: "from-missing", Workspace: h.ws}); err == nil {
		t.Fatal("restore of a missing snapshot succeeded")
	}
	if err := h.p.Restore(ctx, "../../etc", &sdk.SessionSpec{ID: "from-evil", Workspace: h.ws}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("path-like snapshot id: %v", err)
	}
	// The session the snapshot came from is untouched.
	h.expect(id, "print(v)", "1\n")

	for _, c := range []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"absent_qemu", map[string]any{"vmm_binary": "/nonexistent/qemu-system-x86_64"}, "apt-get install"},
		{"absent_cloud_hypervisor", map[string]any{"vmm": "cloud-hypervisor", "vmm_binary": "/nonexistent/cloud-hypervisor"}, "Cloud Hypervisor is not packaged"},
		{"unknown_vmm", map[string]any{"vmm": "bochs"}, "unknown vmm"},
		{"tiny_memory", map[string]any{"memory": "16MiB"}, "at least 128MiB"},
		{"negative_restore_standby", map[string]any{"restore_standby": -1}, "restore_standby"},
		{"fractional_restore_standby", map[string]any{"restore_standby": 1.5}, "restore_standby"},
	} {
		t.Run(c.name, func(t *testing.T) {
			js, _ := json.Marshal(c.cfg)
			err := h.p.Configure(ctx, &sdk.Config{JSON: js, StateDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("configure %s: %v, want an error mentioning %q", js, err, c.want)
			}
		})
	}
}

// TestCleanup: the VMMs of a SIGKILLed plugin outlive it (for their core
// to recover); the next plugin on the same state dir, told that nothing
// is to be recovered, removes them and the run files at once, while a
// plugin of another state dir (as another workspace's daemon would be)
// keeps its VM and session. It counts and sweeps only what its own
// plugins own: VMMs of other instances on the host (a user's own
// sessions) neither make it fail nor are touched.
func TestCleanup(t *testing.T) {
	needQEMU(t)
	bystander := launch(t, nil, t.TempDir())
	bid := bystander.session(sdk.Limits{})
	bystander.expect(bid, "x = 41", "")
	theirs := vmmsUnder(runRootOf(bystander.state))
	if len(theirs) == 0 {
		t.Fatal("no VMM process found for the bystander's session")
	}

	state := t.TempDir()
	root := runRootOf(state)
	h := launch(t, nil, state)
	id := h.session(sdk.Limits{})
	h.expect(id, "print(1)", "1\n")
	before := vmmsUnder(root)
	if len(before) == 0 {
		t.Fatal("no VMM process found while a session runs")
	}
	killPlugin(t, h)
	for _, pid := range before {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("VMM %d died with the plugin; it must outlive it for recovery", pid)
		}
	}
	h2 := launch(t, nil, state)
	if _, err := h2.p.RecoverSessions(context.Background(), nil); err != nil {
		t.Fatalf("recover nothing: %v", err)
	}
	waitFor(t, "the dead plugin's VMMs to be removed", 15*time.Second, func() bool {
		for _, pid := range before {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
	waitRootHolds(t, root, h2.p.Pid())
	h2.expect(h2.session(sdk.Limits{}), "print(2)", "2\n")

	for _, pid := range theirs {
		if syscall.Kill(pid, 0) != nil {
			t.Errorf("the bystander's VMM %d was killed", pid)
		}
	}
	bystander.expect(bid, "print(x + 1)", "42\n")
}

// waitRootHolds waits until the run root holds nothing but the live
// plugin pid's lock file and run dir (the sweep runs in the background).
func waitRootHolds(t *testing.T, root string, pid int) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		left = left[:0]
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), fmt.Sprint(pid)+"-") {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind in %s after 15 s: %v", root, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ourVMMs() []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "mcpruntime-microvm-") && strings.Contains(string(b), "qemu") {
			var pid int
			fmt.Sscanf(strings.TrimPrefix(p, "/proc/"), "%d", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func runRootOf(state string) string { return backend.RunRoot(state) }
