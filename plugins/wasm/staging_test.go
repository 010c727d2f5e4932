package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// TestPooledSessionsSeeOnlyTheirWorkspace: a pooled worker bound to
// session A, then destroyed, and the next pooled worker bound to B: B sees
// B's workspace and nothing of A's anywhere in its file system. A worker's
// mounts (wasmtime as root mounts the session's directories in a mount
// namespace of its own) never show in the plugin's mount table.
func TestPooledSessionsSeeOnlyTheirWorkspace(t *testing.T) {
	p := launch(t, 1)
	ctx := context.Background()
	wsA, wsB := t.TempDir(), t.TempDir()
	for ws, name := range map[string]string{wsA: "a-host.txt", wsB: "b-host.txt"} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Everything the guest can list: its whole tree but the stdlib.
	// (wazero lists no "/": its roots one by one.)
	const walk = "import os\nout = set()\nfor r in ('/', '/workspace', '/mcpruntime'):\n" +
		"  for d, ds, fs in os.walk(r):\n" +
		"    ds[:] = [x for x in ds if os.path.join(d, x) != '/usr']\n" +
		"    out |= {os.path.join(d, f) for f in fs}\nprint(sorted(out))"

	waitPoolFull(t, p)
	a := newSession(t, p, sdk.SessionSpec{Workspace: wsA})
	expectOK(t, p, a, "open('a-guest.txt', 'w').write('a')\nimport os\nprint(sorted(os.listdir('/workspace')))", "['a-guest.txt', 'a-host.txt']\n")
	checkNoHostMounts(t, wsA)
	if n := stagedWorkers(t, p, wsA); n == 0 && stagingExpected() {
		t.Fatalf("no worker of the plugin mounts %s in a mount namespace of its own", wsA)
	}
	if err := p.DestroySession(ctx, a); err != nil {
		t.Fatal(err)
	}

	waitPoolFull(t, p)
	b := newSession(t, p, sdk.SessionSpec{Workspace: wsB})
	o := execCode(t, p, b, walk)
	if !o.res.OK() || strings.Contains(o.stdout, "a-") || !strings.Contains(o.stdout, "'/workspace/b-host.txt'") {
		t.Fatalf("session B's file system: %+v %q", o.res, o.stdout)
	}
	o = execCode(t, p, b, "open('/workspace/a-guest.txt')")
	if o.res.OK() {
		t.Fatalf("session B opened A's file")
	}
	checkNoHostMounts(t, wsA, wsB)
	if n := stagedWorkers(t, p, wsA); n != 0 {
		t.Fatalf("%d workers still mount destroyed session A's workspace", n)
	}
	if n := stagedWorkers(t, p, wsB); n == 0 && stagingExpected() {
		t.Fatalf("no worker of the plugin mounts %s in a mount namespace of its own", wsB)
	}
}

// stagingExpected: wasmtime's pooled workers stage as root.
func stagingExpected() bool {
	e := os.Getenv("MCPRUNTIME_WASM_ENGINE")
	return (e == "" || e == "wasmtime") && os.Geteuid() == 0 && os.Getenv("MCPRUNTIME_WASM_STAGE") != "0"
}

// waitPoolFull polls the plugin's health until its warm pool is full, so
// the next session gets a pooled worker.
func waitPoolFull(t *testing.T, p *host.Plugin) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := p.Health(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Message, "warm pool 1/1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool not refilled: %s", h.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNoHostMounts fails when this process's mount table (the plugin's:
// it runs in the same namespace) names any of dirs or a staging tmpfs.
func checkNoHostMounts(t *testing.T, dirs ...string) {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		for _, d := range append(dirs, "mcpruntime-stage", "mcpruntime-lib", "/stage ") {
			if strings.Contains(line, d) {
				t.Fatalf("a worker's mount leaked into the host's mount table: %s", line)
			}
		}
	}
}

// stagedWorkers counts the plugin's worker processes that have a mount
// namespace other than ours with dir mounted in it.
func stagedWorkers(t *testing.T, p *host.Plugin, dir string) int {
	t.Helper()
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(p.Pid()) || pid == p.Pid() {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt"))
		if err != nil || ns == ours {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err != nil {
			continue
		}
		// id parent major:minor root mount-point ...: the workspace's
		// mount point is the staging root's, its root dir's path within
		// its file system (a suffix of dir when that is a submount).
		for _, line := range strings.Split(string(info), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasSuffix(f[4], "/stage"+sdk.GuestWorkspace) && strings.HasSuffix(dir, f[3]) && f[3] != "/" {
				n++
				break
			}
		}
	}
	return n
}

// TestLibrariesReadOnlyFromRoot: a library mount stays read-only when the
// guest reaches it through a directory fd of "/" (wasmtime's staging root
// preopens "/" with write rights for the workspace below it): the mounts
// themselves are read-only.
func TestLibrariesReadOnlyFromRoot(t *testing.T) {
	p := launch(t, 1)
	skills := t.TempDir()
	if err := os.WriteFile(filepath.Join(skills, "greet.py"), []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := newSession(t, p, sdk.SessionSpec{Mounts: []sdk.Mount{{Source: skills, Target: sdk.GuestSkills, ReadOnly: true}}})
	for _, code := range []string{
		"import os\nfd = os.open('/', os.O_RDONLY)\nos.open('mcpruntime/lib/skills/evil.py', os.O_CREAT | os.O_WRONLY, dir_fd=fd)",
		"import os\nfd = os.open('/', os.O_RDONLY)\nos.open('mcpruntime/lib/skills/greet.py', os.O_WRONLY | os.O_TRUNC, dir_fd=fd)",
		"import os\nfd = os.open('/', os.O_RDONLY)\nos.unlink('mcpruntime/lib/skills/greet.py', dir_fd=fd)",
		"import os\nfd = os.open('/', os.O_RDONLY)\nos.mkdir('evil', dir_fd=fd)",
	} {
		if o := execCode(t, p, id, code); o.res.OK() {
			t.Errorf("%q succeeded", code)
		}
	}
	if names, err := os.ReadDir(skills); err != nil || len(names) != 1 {
		t.Fatalf("skills dir changed: %v %v", names, err)
	}
	if b, err := os.ReadFile(filepath.Join(skills, "greet.py")); err != nil || string(b) != "x = 1\n" {
		t.Fatalf("greet.py changed: %q %v", b, err)
	}
}
