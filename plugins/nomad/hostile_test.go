package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// countProcs is sandbox code printing how many processes the allocation's
// pid namespace has (init, the kernel and the channel relay when clean).
const countProcs = "import os\nprint(sum(d.isdigit() for d in os.listdir('/proc')))"

func TestHostileCode(t *testing.T) {
	requireCluster(t)
	h := launch(t, 1, "")
	// A bystander session: nothing the hostile code does may touch it.
	bystander := h.Session(t, sdk.Limits{})
	h.Expect(t, bystander, "mine = 'intact'", "")

	t.Run("uninterruptible_loop", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{Timeout: 2 * time.Second})
		h.Expect(t, id, "keep = 1", "")
		o := h.Exec(t, id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
		if o.Result.Error != sdk.ErrorTimeout || o.Result.ExitCode != 124 || !o.Result.StateLost {
			t.Fatalf("loop ignoring SIGINT: %+v", o.Result)
		}
		h.Expect(t, id, "print('keep' in globals())", "False\n")
	})
	t.Run("fork_bomb", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{Timeout: 3 * time.Second})
		h.Expect(t, id, "keep = 1", "")
		o := h.Exec(t, id, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
		if o.Result.Error != sdk.ErrorTimeout || o.Result.ExitCode != 124 {
			t.Fatalf("fork bomb: %+v", o.Result)
		}
		// Every forked process goes; init, the kernel and the relay stay
		// (the kill is asynchronous: poll).
		deadline := time.Now().Add(20 * time.Second)
		for {
			o := h.Exec(t, id, countProcs)
			if o.Stdout == "3\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("processes left after the fork bomb: %q %+v", o.Stdout, o.Result)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// With both cores spinning, the interrupt may come too late for
		// the kernel: then the session says so and starts afresh.
		want := "True\n"
		if o.Result.StateLost {
			want = "False\n"
		}
		h.Expect(t, id, "print('keep' in globals())", want)
	})
	t.Run("memory_bomb_cgroup", func(t *testing.T) {
		// No rlimit: the allocation's memory limit (1 GiB) stops it.
		h.MemoryBombKillsKernel(t)
	})
	t.Run("memory_bomb_rlimit", func(t *testing.T) { h.MemoryBombUnderRlimit(t) })
	t.Run("network", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "import os\nprint(sorted(os.listdir('/sys/class/net')))", "['lo']\n")
		o := h.Exec(t, id, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)")
		if o.Result.OK() || o.Result.Exception == nil || !strings.Contains(o.Result.Exception.Message, "unreachable") {
			t.Fatalf("outbound connect: %+v %+v", o.Result, o.Result.Exception)
		}
		// The cluster's own API on the host's loopback is out of reach too.
		o = h.Exec(t, id, fmt.Sprintf("import socket\nsocket.create_connection(('127.0.0.1', %s), timeout=3)", cluster.Addr[strings.LastIndexByte(cluster.Addr, ':')+1:]))
		if o.Result.OK() {
			t.Fatalf("the sandbox reached the Nomad API at %s", cluster.Addr)
		}
		h.Expect(t, id, "import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\nc = socket.create_connection(s.getsockname()); print('lo ok')", "lo ok\n")
	})
	t.Run("host_files", func(t *testing.T) {
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "import os\nprint(os.path.exists('/etc/shadow'), os.path.exists('/root'), os.path.exists('/work'), os.getuid())", "False False False 65534\n")
		// No capabilities: the exec driver's defaults include
		// dac_override, and the chroot's files are hard links to the
		// client's (/etc/passwd here is the host's).
		h.Expect(t, id, "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])", "0000000000000000\n")
		for _, path := range []string{"/etc/passwd", "/usr/bin/python3", "/usr/lib/python3.11/os.py", "/usr/evil"} {
			o := h.Exec(t, id, fmt.Sprintf("import errno\ntry:\n    open(%q, 'a')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])", path))
			if !o.Result.OK() || (o.Stdout != "EACCES\n" && o.Stdout != "EROFS\n") {
				t.Fatalf("write %s: %q %+v", path, o.Stdout, o.Result)
			}
		}
	})
	t.Run("core_files_in_workspace", func(t *testing.T) {
		// The workspace's .mcpruntime belongs to the core: what the
		// sandbox writes there stays in the sandbox.
		id := h.Session(t, sdk.Limits{})
		h.Expect(t, id, "import os\nos.makedirs('.mcpruntime', exist_ok=True)\nopen('.mcpruntime/forged', 'w').write('x')\n_ = open('plain', 'w').write('y')", "")
		if _, err := os.Stat(filepath.Join(h.ws, ".mcpruntime", "forged")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf(".mcpruntime/forged on the host: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(h.ws, "plain")); err != nil || string(b) != "y" {
			t.Fatalf("plain file on the host: %q %v", b, err)
		}
	})
	h.Expect(t, bystander, "print(mine)", "intact\n")
}
