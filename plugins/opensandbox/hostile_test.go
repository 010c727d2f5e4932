package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// harness is one launched plugin binary, configured, with sessions on a
// temporary workspace.
type harness struct {
	p   *host.Plugin
	ws  string
	seq int
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
	t.Cleanup(p.Kill)
	if config == "" {
		config = testenv.ConfigJSON()
	}
	if err := p.Configure(ctx, &sdk.Config{JSON: []byte(config), PoolSize: pool, StateDir: filepath.Join(h.ws, ".state")}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h
}

func (h *harness) session(t testing.TB, limits sdk.Limits) string {
	t.Helper()
	h.seq++
	id := fmt.Sprintf("hostile-%d-%d", os.Getpid(), h.seq)
	if limits.Timeout == 0 {
		limits.Timeout = 30 * time.Second
	}
	if err := h.p.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: limits}); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return id
}

type output struct {
	res    *sdk.ExecResult
	stdout string
	stderr string
}

func (h *harness) exec(t testing.TB, id, code string) output {
	t.Helper()
	var mu sync.Mutex
	var out, errb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.p.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: code}, func(e sdk.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case sdk.EventStdout:
			out.Write(e.Data)
		case sdk.EventStderr:
			errb.Write(e.Data)
		}
	})
	if err != nil {
		t.Fatalf("execute %q: %v", code, err)
	}
	return output{res: res, stdout: out.String(), stderr: errb.String()}
}

// expect runs code and requires success and exactly stdout.
func (h *harness) expect(t testing.TB, id, code, stdout string) {
	t.Helper()
	o := h.exec(t, id, code)
	if !o.res.OK() || o.stdout != stdout {
		t.Fatalf("%q: ok=%v stdout=%q want %q; %s stderr=%q", code, o.res.OK(), o.stdout, stdout, o.res.Message, o.stderr)
	}
}

// countProcs is sandbox code printing how many processes the container has.
const countProcs = "import os\nprint(sum(d.isdigit() for d in os.listdir('/proc')))"

func TestHostileCode(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 1, "")
	// A bystander session: nothing the hostile code does may touch it.
	bystander := h.session(t, sdk.Limits{})
	h.expect(t, bystander, "mine = 'intact'", "")

	t.Run("fork_bomb", func(t *testing.T) {
		id := h.session(t, sdk.Limits{Pids: 64, Timeout: 3 * time.Second})
		o := h.exec(t, id, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
		if o.res.Error != sdk.ErrorTimeout || o.res.ExitCode != 124 {
			t.Fatalf("fork bomb: %+v", o.res)
		}
		// Every forked process is gone; init and the kernel are left.
		h.expect(t, id, countProcs, "2\n")
	})
	t.Run("memory_bomb_cgroup", func(t *testing.T) {
		// No rlimit: the container's memory cgroup stops it.
		id := h.session(t, sdk.Limits{})
		h.expect(t, id, "keep = 1", "")
		o := h.exec(t, id, "b = bytearray(3 * 1024**3)")
		if o.res.OK() || o.res.Error != sdk.ErrorKernelDied || !o.res.StateLost || !strings.Contains(o.res.Message, "memory") {
			t.Fatalf("memory bomb: %+v", o.res)
		}
		h.expect(t, id, "print('keep' in globals())", "False\n")
	})
	t.Run("memory_bomb_rlimit", func(t *testing.T) {
		id := h.session(t, sdk.Limits{MemoryBytes: 256 << 20})
		h.expect(t, id, "keep = 1", "")
		o := h.exec(t, id, "b = bytearray(512 * 1024**2)")
		if o.res.Error != sdk.ErrorMemory || o.res.StateLost {
			t.Fatalf("memory bomb under an rlimit: %+v", o.res)
		}
		h.expect(t, id, "print(keep)", "1\n")
	})
	t.Run("uninterruptible_loop", func(t *testing.T) {
		id := h.session(t, sdk.Limits{Timeout: 2 * time.Second})
		o := h.exec(t, id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
		if o.res.Error != sdk.ErrorTimeout || o.res.ExitCode != 124 || !o.res.StateLost {
			t.Fatalf("loop ignoring SIGINT: %+v", o.res)
		}
		h.expect(t, id, "print('recreated')", "recreated\n")
	})
	t.Run("output_flood_fd", func(t *testing.T) {
		id := h.session(t, sdk.Limits{OutputBytes: 1 << 20})
		// 100 MB written to fd 1 directly, bypassing sys.stdout.
		o := h.exec(t, id, "import os\nchunk = b'z' * (1 << 20)\nfor _ in range(100):\n    os.write(1, chunk)")
		if !o.res.OutputTruncated || len(o.stdout) > 1<<20 {
			t.Fatalf("100 MB on fd 1: truncated=%v len=%d %+v", o.res.OutputTruncated, len(o.stdout), o.res)
		}
		h.expect(t, id, "print('after flood')", "after flood\n")
	})
	t.Run("network", func(t *testing.T) {
		id := h.session(t, sdk.Limits{})
		h.expect(t, id, "import os\nprint(sorted(os.listdir('/sys/class/net')))", "['lo']\n")
		o := h.exec(t, id, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)")
		if o.res.OK() || o.res.Exception == nil || !strings.Contains(o.res.Exception.Message, "unreachable") {
			t.Fatalf("outbound connect: %+v %+v", o.res, o.res.Exception)
		}
		// Loopback works inside the sandbox.
		h.expect(t, id, "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\nc = socket.create_connection(s.getsockname()); print('lo ok')", "lo ok\n")
	})
	t.Run("host_files", func(t *testing.T) {
		host, err := os.ReadFile("/etc/shadow")
		if err != nil {
			t.Fatalf("read host shadow: %v", err)
		}
		id := h.session(t, sdk.Limits{})
		o := h.exec(t, id, "print(open('/etc/shadow').read(), end='')")
		if !o.res.OK() || o.stdout == string(host) || strings.Contains(o.stdout, "$") {
			t.Fatalf("/etc/shadow in the sandbox is the host's or holds a hash: %q %+v", o.stdout, o.res)
		}
		h.expect(t, id, "import os\nprint(os.path.exists('/root/.bashrc'), os.path.exists('/var/lib/mcpruntime'), os.getuid())", "False False 1000\n")
	})
	t.Run("write_outside_workspace", func(t *testing.T) {
		id := h.session(t, sdk.Limits{})
		for _, path := range []string{"/etc/passwd", "/usr/evil", "/mcpruntime/kernel/evil", "/evil"} {
			o := h.exec(t, id, fmt.Sprintf("import errno\ntry:\n    open(%q, 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", path))
			if !o.res.OK() || o.stdout != "EROFS\n" {
				t.Fatalf("write %s: %q %+v", path, o.stdout, o.res)
			}
		}
		h.expect(t, id, "open('/tmp/scratch', 'w').write('ok'); print(open('/tmp/scratch').read())", "ok\n")
	})
	t.Run("kill_init", func(t *testing.T) {
		id := h.session(t, sdk.Limits{})
		h.expect(t, id, "state = 5", "")
		// The kernel is the container's init: signals from inside its pid
		// namespace that it has no handler for are not delivered.
		o := h.exec(t, id, "import os, subprocess\nos.kill(1, 9)\nsubprocess.run(['sh', '-c', 'kill -9 1'])\nprint('alive')")
		if !o.res.OK() || o.stdout != "alive\n" {
			t.Fatalf("kill -9 1: %q %+v", o.stdout, o.res)
		}
		h.expect(t, id, "print(state)", "5\n")
	})
	t.Run("privileges", func(t *testing.T) {
		id := h.session(t, sdk.Limits{})
		o := h.exec(t, id, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint(r, os.strerror(ctypes.get_errno()))\nprint(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])")
		if !o.res.OK() || o.stdout != "-1 Operation not permitted\n1\n" {
			t.Fatalf("mount from the sandbox / no_new_privs: %q %+v", o.stdout, o.res)
		}
	})
	h.expect(t, bystander, "print(mine)", "intact\n")
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
	h.expect(t, id, "import numpy as np, pandas as pd\nprint(int(np.arange(4).sum()), len(pd.DataFrame({'a': [1, 2]})))", "6 2\n")
	h.expect(t, id, "import os, subprocess\nprint(os.environ['GREETING'], os.getcwd(), subprocess.run(['sh', '-c', 'echo sh-ok'], capture_output=True, text=True).stdout.strip())", "hi /workspace sh-ok\n")
	h.expect(t, id, "import os\nprint(ascii(os.environ['TRICKY']))", `'q"b\\n\n\u2028\xe9<&>\''`+"\n")
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
	h.expect(t, id, "from skills.greet import run\nprint(run('sandbox'))", "hello sandbox\n")
	h.expect(t, id, "import errno\ntry:\n    open('/mcpruntime/lib/skills/evil.py', 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", "EROFS\n")
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
				h.expect(t, h.session(t, sdk.Limits{}), probe, "2 -1 Operation not permitted\n")
			}
			if _, err := daemon.UsableCrun(); rt == "auto" && err == nil {
				if m, _ := filepath.Glob(filepath.Join(h.ws, ".state", "seccomp", "*.bpf")); len(m) != 1 {
					t.Errorf("cached seccomp programs: %v, want one", m)
				}
			}
		})
	}
}
