package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// harness is one launched plugin binary, configured, with sessions on a
// temporary workspace.
type harness struct {
	*sandboxtest.Harness
	p  *host.Plugin
	ws string
}

func launch(t *testing.T, bin string, pool int, config string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, bin, host.WithStartTimeout(time.Minute))
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	h := &harness{p: p, ws: t.TempDir()}
	h.Harness = &sandboxtest.Harness{B: p, Workspace: h.ws, Prefix: "hostile"}
	t.Cleanup(p.Kill)
	if config == "" {
		config = testenv.ConfigJSON()
	}
	if err := p.Configure(ctx, &sdk.Config{JSON: []byte(config), PoolSize: pool, StateDir: filepath.Join(h.ws, ".state")}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h
}

// countProcs is sandbox code printing how many processes the container has.
const countProcs = "import os\nprint(sum(d.isdigit() for d in os.listdir('/proc')))"

func TestHostileCode(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 1, "")
	// A bystander session: nothing the hostile code does may touch it.
	bystander := h.Session(t, sdk.Limits{})
	h.Expect(t, bystander, "mine = 'intact'", "")

	t.Run("fork_bomb", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{Pids: 64, Timeout: 3 * time.Second})
		o := h.Exec(t, id, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
		if o.Result.Error != sdk.ErrorTimeout || o.Result.ExitCode != 124 {
			t.Fatalf("fork bomb: %+v", o.Result)
		}
		// Every forked process is gone; init and the kernel are left.
		h.Expect(t, id, countProcs, "2\n")
	})
	t.Run("memory_bomb_cgroup", func(t *testing.T) {
		// No rlimit: the container's memory cgroup stops it.
		h.MemoryBombKillsKernel(t)
	})
	t.Run("memory_bomb_rlimit", func(t *testing.T) { h.MemoryBombUnderRlimit(t) })
	t.Run("uninterruptible_loop", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{Timeout: 2 * time.Second})
		o := h.Exec(t, id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
		if o.Result.Error != sdk.ErrorTimeout || o.Result.ExitCode != 124 || !o.Result.StateLost {
			t.Fatalf("loop ignoring SIGINT: %+v", o.Result)
		}
		h.Expect(t, id, "print('recreated')", "recreated\n")
	})
	t.Run("output_flood_fd", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{OutputBytes: 1 << 20})
		// 100 MB written to fd 1 directly, bypassing sys.stdout.
		o := h.Exec(t, id, "import os\nchunk = b'z' * (1 << 20)\nfor _ in range(100):\n    os.write(1, chunk)")
		if !o.Result.OutputTruncated || len(o.Stdout) > 1<<20 {
			t.Fatalf("100 MB on fd 1: truncated=%v len=%d %+v", o.Result.OutputTruncated, len(o.Stdout), o.Result)
		}
		h.Expect(t, id, "print('after flood')", "after flood\n")
	})
	t.Run("network", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "import os\nprint(sorted(os.listdir('/sys/class/net')))", "['lo']\n")
		o := h.Exec(t, id, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)")
		if o.Result.OK() || o.Result.Exception == nil || !strings.Contains(o.Result.Exception.Message, "unreachable") {
			t.Fatalf("outbound connect: %+v %+v", o.Result, o.Result.Exception)
		}
		// Loopback works inside the sandbox.
		h.Expect(t, id, "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\nc = socket.create_connection(s.getsockname()); print('lo ok')", "lo ok\n")
	})
	t.Run("host_files", func(t *testing.T) {
		host, err := os.ReadFile("/etc/shadow")
		if err != nil {
			t.Fatalf("read host shadow: %v", err)
		}
		id := h.Session(t, sdk.Limits{})
		o := h.Exec(t, id, "print(open('/etc/shadow').read(), end='')")
		if !o.Result.OK() || o.Stdout == string(host) || strings.Contains(o.Stdout, "$") {
			t.Fatalf("/etc/shadow in the sandbox is the host's or holds a hash: %q %+v", o.Stdout, o.Result)
		}
		h.Expect(t, id, "import os\nprint(os.path.exists('/root/.bashrc'), os.path.exists('/var/lib/mcpruntime'), os.getuid())", "False False 1000\n")
	})
	t.Run("write_outside_workspace", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		for _, path := range []string{"/etc/passwd", "/usr/evil", "/mcpruntime/kernel/evil", "/evil"} {
			o := h.Exec(t, id, fmt.Sprintf("import errno\ntry:\n    open(%q, 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", path))
			if !o.Result.OK() || o.Stdout != "EROFS\n" {
				t.Fatalf("write %s: %q %+v", path, o.Stdout, o.Result)
			}
		}
		h.Expect(t, id, "open('/tmp/scratch', 'w').write('ok'); print(open('/tmp/scratch').read())", "ok\n")
	})
	t.Run("kill_init", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "state = 5", "")
		// The kernel is the container's init: signals from inside its pid
		// namespace that it has no handler for are not delivered.
		o := h.Exec(t, id, "import os, subprocess\nos.kill(1, 9)\nsubprocess.run(['sh', '-c', 'kill -9 1'])\nprint('alive')")
		if !o.Result.OK() || o.Stdout != "alive\n" {
			t.Fatalf("kill -9 1: %q %+v", o.Stdout, o.Result)
		}
		h.Expect(t, id, "print(state)", "5\n")
	})
	t.Run("privileges", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		o := h.Exec(t, id, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint(r, os.strerror(ctypes.get_errno()))\nprint(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])")
		if !o.Result.OK() || o.Stdout != "-1 Operation not permitted\n1\n" {
			t.Fatalf("mount from the sandbox / no_new_privs: %q %+v", o.Stdout, o.Result)
		}
	})
	h.Expect(t, bystander, "print(mine)", "intact\n")
}

// TestDefaultImage checks what agents expect of the default image (under
// the 512 MiB limit the example runtime.hcl sets), and
// that the environment a session asks for reaches its code.
func TestDefaultImage(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 1, "")
	id := fmt.Sprintf("image-%d", os.Getpid())
	spec := &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: sdk.Limits{Timeout: time.Minute, MemoryBytes: 512 << 20}, Env: map[string]string{"GREETING": "hi", "TRICKY": "q\"b\\n\n\u2028é<&>'"}}
	if err := h.p.CreateSession(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	h.Expect(t, id, "import numpy as np, pandas as pd\nprint(int(np.arange(4).sum()), len(pd.DataFrame({'a': [1, 2]})))", "6 2\n")
	h.Expect(t, id, "import os, subprocess\nprint(os.environ['GREETING'], os.getcwd(), subprocess.run(['sh', '-c', 'echo sh-ok'], capture_output=True, text=True).stdout.strip())", "hi /workspace sh-ok\n")
	h.Expect(t, id, "import os\nprint(ascii(os.environ['TRICKY']))", `'q"b\\n\n\u2028\xe9<&>\''`+"\n")
}

// TestLibraryMounts checks that spec.Mounts appear read-only at their
// targets below /mcpruntime/lib and are importable, on a pooled container.
func TestLibraryMounts(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 1, "")
	skills := t.TempDir()
	if err := os.WriteFile(filepath.Join(skills, "greet.py"), []byte("def run(name):\n    return 'hello ' + name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the pool has a container ready
	id := fmt.Sprintf("mounts-%d", os.Getpid())
	spec := &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: sdk.Limits{Timeout: time.Minute},
		Mounts: []sdk.Mount{{Source: skills, Target: sdk.GuestSkills, ReadOnly: true}}}
	if err := h.p.CreateSession(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	h.Expect(t, id, "from skills.greet import run\nprint(run('sandbox'))", "hello sandbox\n")
	h.Expect(t, id, "import errno\ntry:\n    open('/mcpruntime/lib/skills/evil.py', 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", "EROFS\n")
	if _, err := os.Stat(filepath.Join(skills, "evil.py")); err == nil {
		t.Fatal("the sandbox wrote into a read-only mount")
	}
}

// TestSeccompFilter checks that the default seccomp profile confines every
// container, under each runtime: the first crun container compiles it, the
// next ones load the cached program (see seccompCache), runc compiles it
// each time. keyctl is outside the profile's allow list: EPERM.
func TestSeccompFilter(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	const probe = "import ctypes, os\n" +
		"status = open('/proc/self/status').read().split('Seccomp:')[1].split()[0]\n" +
		"libc = ctypes.CDLL(None, use_errno=True)\n" +
		"r = libc.syscall(250, 0, 0, 0, 0, 0)  # keyctl(KEYCTL_GET_KEYRING_ID, ...)\n" +
		"print(status, r, os.strerror(ctypes.get_errno()))"
	for _, rt := range []string{"auto", "runc"} {
		t.Run(rt, func(t *testing.T) {
			h := launch(t, bin, 0, testenv.ConfigJSONRuntime(rt))
			for range 3 {
				h.Expect(t, h.Session(t, sdk.Limits{}), probe, "2 -1 Operation not permitted\n")
			}
			if _, err := daemon.UsableCrun(); rt == "auto" && err == nil {
				if m, _ := filepath.Glob(filepath.Join(h.ws, ".state", "seccomp", "*.bpf")); len(m) != 1 {
					t.Errorf("cached seccomp programs: %v, want one", m)
				}
			}
		})
	}
}
