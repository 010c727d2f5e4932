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

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// harness is one launched plugin binary, configured, with sessions on a
// temporary workspace.
type harness struct {
	t   *testing.T
	p   *sdk.Plugin
	ws  string
	seq int
}

func launch(t *testing.T, bin string, pool int, config string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := sdk.Launch(ctx, bin, sdk.WithStartTimeout(time.Minute))
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	h := &harness{t: t, p: p, ws: t.TempDir()}
	t.Cleanup(p.Kill)
	if config == "" {
		config = testenv.ConfigJSON()
	}
	if err := p.Configure(ctx, &sdk.Config{JSON: []byte(config), PoolSize: pool, StateDir: filepath.Join(h.ws, ".state")}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h
}

func (h *harness) session(limits sdk.Limits) string {
	h.t.Helper()
	h.seq++
	id := fmt.Sprintf("hostile-%d-%d", os.Getpid(), h.seq)
	if limits.Timeout == 0 {
		limits.Timeout = 30 * time.Second
	}
	if err := h.p.CreateSession(context.Background(), &sdk.SessionSpec{ID: id, Workspace: h.ws, Limits: limits}); err != nil {
		h.t.Fatalf("create session: %v", err)
	}
	return id
}

type output struct {
	res    *sdk.ExecResult
	stdout string
	stderr string
}

func (h *harness) exec(id, code string) output {
	h.t.Helper()
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
		h.t.Fatalf("execute %q: %v", code, err)
	}
	return output{res: res, stdout: out.String(), stderr: errb.String()}
}

// expect runs code and requires success and exactly stdout.
func (h *harness) expect(id, code, stdout string) {
	h.t.Helper()
	o := h.exec(id, code)
	if !o.res.OK() || o.stdout != stdout {
		h.t.Fatalf("%q: ok=%v stdout=%q want %q; %s stderr=%q", code, o.res.OK(), o.stdout, stdout, o.res.Message, o.stderr)
	}
}

// countProcs is sandbox code printing how many processes the container has.
const countProcs = "import os\nprint(sum(d.isdigit() for d in os.listdir('/proc')))"

func TestHostileCode(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 1, "")
	// A bystander session: nothing the hostile code does may touch it.
	bystander := h.session(sdk.Limits{})
	h.expect(bystander, "mine = 'intact'", "")

	t.Run("fork_bomb", func(t *testing.T) {
		id := h.session(sdk.Limits{Pids: 64, Timeout: 3 * time.Second})
		o := h.exec(id, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
		if o.res.Error != sdk.ErrorTimeout || o.res.ExitCode != 124 {
			t.Fatalf("fork bomb: %+v", o.res)
		}
		// Every forked process is gone; only the kernel is left.
		h.expect(id, countProcs, "1\n")
	})
	t.Run("memory_bomb_cgroup", func(t *testing.T) {
		// No rlimit: the container's memory cgroup stops it.
		id := h.session(sdk.Limits{})
		h.expect(id, "keep = 1", "")
		o := h.exec(id, "b = bytearray(3 * 1024**3)")
		if o.res.OK() || o.res.Error != sdk.ErrorKernelDied || !o.res.StateLost || !strings.Contains(o.res.Message, "memory") {
			t.Fatalf("memory bomb: %+v", o.res)
		}
		h.expect(id, "print('keep' in globals())", "False\n")
	})
	t.Run("memory_bomb_rlimit", func(t *testing.T) {
		id := h.session(sdk.Limits{MemoryBytes: 256 << 20})
		h.expect(id, "keep = 1", "")
		o := h.exec(id, "b = bytearray(512 * 1024**2)")
		if o.res.Error != sdk.ErrorMemory || o.res.StateLost {
			t.Fatalf("memory bomb under an rlimit: %+v", o.res)
		}
		h.expect(id, "print(keep)", "1\n")
	})
	t.Run("uninterruptible_loop", func(t *testing.T) {
		id := h.session(sdk.Limits{Timeout: 2 * time.Second})
		o := h.exec(id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
		if o.res.Error != sdk.ErrorTimeout || o.res.ExitCode != 124 || !o.res.StateLost {
			t.Fatalf("loop ignoring SIGINT: %+v", o.res)
		}
		h.expect(id, "print('recreated')", "recreated\n")
	})
	t.Run("output_flood_fd", func(t *testing.T) {
		id := h.session(sdk.Limits{OutputBytes: 1 << 20})
		// 100 MB written to fd 1 directly, bypassing sys.stdout.
		o := h.exec(id, "import os\nchunk = b'z' * (1 << 20)\nfor _ in range(100):\n    os.write(1, chunk)")
		if !o.res.OutputTruncated || len(o.stdout) > 1<<20 {
			t.Fatalf("100 MB on fd 1: truncated=%v len=%d %+v", o.res.OutputTruncated, len(o.stdout), o.res)
		}
		h.expect(id, "print('after flood')", "after flood\n")
	})
	t.Run("network", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		h.expect(id, "import os\nprint(sorted(os.listdir('/sys/class/net')))", "['lo']\n")
		o := h.exec(id, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)")
		if o.res.OK() || o.res.Exception == nil || !strings.Contains(o.res.Exception.Message, "unreachable") {
			t.Fatalf("outbound connect: %+v %+v", o.res, o.res.Exception)
		}
		// Loopback works inside the sandbox.
		h.expect(id, "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\nc = socket.create_connection(s.getsockname()); print('lo ok')", "lo ok\n")
	})
	t.Run("host_files", func(t *testing.T) {
		host, err := os.ReadFile("/etc/shadow")
		if err != nil {
			t.Fatalf("read host shadow: %v", err)
		}
		id := h.session(sdk.Limits{})
		o := h.exec(id, "print(open('/etc/shadow').read(), end='')")
		if !o.res.OK() || o.stdout == string(host) || strings.Contains(o.stdout, "$") {
			t.Fatalf("/etc/shadow in the sandbox is the host's or holds a hash: %q %+v", o.stdout, o.res)
		}
		h.expect(id, "import os\nprint(os.path.exists('/root/.bashrc'), os.path.exists('/var/lib/mcpruntime'), os.getuid())", "False False 1000\n")
	})
	t.Run("write_outside_workspace", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		for _, path := range []string{"/etc/passwd", "/usr/evil", "/mcpruntime/kernel/evil", "/evil"} {
			o := h.exec(id, fmt.Sprintf("import errno\ntry:\n    open(%q, 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", path))
			if !o.res.OK() || o.stdout != "EROFS\n" {
				t.Fatalf("write %s: %q %+v", path, o.stdout, o.res)
			}
		}
		h.expect(id, "open('/tmp/scratch', 'w').write('ok'); print(open('/tmp/scratch').read())", "ok\n")
	})
	t.Run("kill_init", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		h.expect(id, "state = 5", "")
		// The kernel is the container's init: signals from inside its pid
		// namespace that it has no handler for are not delivered.
		o := h.exec(id, "import os, subprocess\nos.kill(1, 9)\nsubprocess.run(['sh', '-c', 'kill -9 1'])\nprint('alive')")
		if !o.res.OK() || o.stdout != "alive\n" {
			t.Fatalf("kill -9 1: %q %+v", o.stdout, o.res)
		}
		h.expect(id, "print(state)", "5\n")
	})
	t.Run("privileges", func(t *testing.T) {
		id := h.session(sdk.Limits{})
		o := h.exec(id, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint(r, os.strerror(ctypes.get_errno()))\nprint(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])")
		if !o.res.OK() || o.stdout != "-1 Operation not permitted\n1\n" {
			t.Fatalf("mount from the sandbox / no_new_privs: %q %+v", o.stdout, o.res)
		}
	})
	h.expect(bystander, "print(mine)", "intact\n")
}
