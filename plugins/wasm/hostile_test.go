package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// TestHostileCode runs bad input through the real plugin binary. Each case
// must come back as a clear result (never a plugin error), after which the
// same session and a fresh one both still work.
func TestHostileCode(t *testing.T) {
	p := launch(t, 1)
	limits := sdk.Limits{MemoryBytes: 256 << 20, OutputBytes: 64 << 10, Timeout: 20 * time.Second}
	cases := []struct {
		name, code string
		// check inspects the outcome; nil means "must fail with a message".
		check func(t *testing.T, o output)
	}{
		{"bytearray_bomb", "b = bytearray(10**10)", nil},
		{"string_bomb", "s = 'x' * 10**10", nil},
		{"real_memory_bomb", "b = bytearray(2 * 10**9)", memoryError},
		{"growing_list_bomb", "l = []\nwhile True:\n    l.append(bytearray(10**7))", memoryError},
		{"recursion_bomb", "def f(n):\n    return f(n + 1)\nf(0)", func(t *testing.T, o output) {
			if o.res.Exception == nil || o.res.Exception.Type != "RecursionError" {
				t.Fatalf("recursion: %+v", o.res)
			}
		}},
		{"c_recursion_bomb", "import json\njson.loads('[' * 1_000_000 + ']' * 1_000_000)", nil},
		{"output_flood", "line = 'x' * 99_999\nfor _ in range(1000):\n    print(line)", func(t *testing.T, o output) {
			if !o.res.OutputTruncated || len(o.stdout) > 64<<10 {
				t.Fatalf("100 MB of output: truncated=%v len=%d", o.res.OutputTruncated, len(o.stdout))
			}
		}},
		{"etc_passwd", "print(open('/etc/passwd').read())", outsideRefused},
		{"dotdot", "print(open('../../../../etc/passwd').read())", outsideRefused},
		{"dotdot_dir", "import os\nprint(os.listdir('../..'))", func(t *testing.T, o output) {
			// The guest root holds only the mounts: nothing of the host.
			for _, host := range []string{"etc", "home", "root", "proc", "tmp"} {
				if strings.Contains(o.stdout, "'"+host+"'") {
					t.Fatalf("host directory %s visible: %s", host, o.stdout)
				}
			}
		}},
		// wazero refuses to make the link; wasmtime makes it and refuses
		// to follow it out of the workspace. Either way nothing is read.
		{"symlink_escape", "import os\nos.symlink('../../../../../../etc/passwd', 'p')\nprint(open('p').read())", func(t *testing.T, o output) {
			if o.res.OK() || o.res.Exception == nil || !strings.Contains(o.res.Exception.Type, "Error") || strings.Contains(o.stdout, "root:") {
				t.Fatalf("symlink out of the workspace: %+v %.100q", o.res, o.stdout)
			}
		}},
		{"write_stdlib", "open('/usr/local/lib/python3.13/os.py', 'a').write('x')", func(t *testing.T, o output) {
			if o.res.OK() || !readOnlyRefusal(o.res.Message) {
				t.Fatalf("stdlib write: %+v", o.res)
			}
		}},
		{"socket", "import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 80))", nil},
		{"subprocess", "import subprocess\nsubprocess.run(['ls'])", nil},
		{"threading", "import threading\nt = threading.Thread(target=print, args=('hi',))\nt.start()\nt.join()", nil},
		{"os_exit", "import os\nos._exit(3)", func(t *testing.T, o output) {
			if o.res.Error != sdk.ErrorKernelDied || o.res.ExitCode != 3 || !o.res.StateLost {
				t.Fatalf("os._exit(3): %+v", o.res)
			}
		}},
		{"syntax_error", "def (:", func(t *testing.T, o output) {
			if o.res.Error != sdk.ErrorSyntax {
				t.Fatalf("syntax error: %+v", o.res)
			}
		}},
		{"huge_code_line", "x = '" + strings.Repeat("z", 3<<20) + "'\nprint(len(x))", func(t *testing.T, o output) {
			if !o.res.OK() || o.stdout != "3145728\n" {
				t.Fatalf("3 MB line of code: %+v %q", o.res, o.stdout)
			}
		}},
		{"huge_output_line", "print('y' * 20_000_000)", func(t *testing.T, o output) {
			if !o.res.OutputTruncated || !strings.HasPrefix(o.stdout, "yyy") {
				t.Fatalf("20 MB line: %+v", o.res)
			}
		}},
		{"infinite_loop", "while True:\n    pass", func(t *testing.T, o output) {
			if o.res.Error != sdk.ErrorTimeout || o.res.ExitCode != 124 || !o.res.StateLost {
				t.Fatalf("infinite loop: %+v", o.res)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lim := limits
			if c.name == "infinite_loop" {
				lim.Timeout = time.Second
			}
			id := newSession(t, p, sdk.SessionSpec{Limits: lim})
			expectOK(t, p, id, "kept = 1", "")
			o := execCode(t, p, id, c.code)
			t.Logf("%s -> error=%q exit=%d lost=%v: %.200s", c.name, o.res.Error, o.res.ExitCode, o.res.StateLost, o.res.Message)
			if c.check != nil {
				c.check(t, o)
			} else if o.res.OK() || o.res.Message == "" {
				t.Fatalf("%s: want a failure with a message, got %+v", c.name, o.res)
			}
			want := "1\n"
			if o.res.StateLost {
				want = "False\n"
				expectOK(t, p, id, "print('kept' in globals())", want)
			} else {
				expectOK(t, p, id, "print(kept)", want)
			}
			fresh := newSession(t, p, sdk.SessionSpec{Limits: limits})
			expectOK(t, p, fresh, "print('fresh')", "fresh\n")
		})
	}
}

// readOnlyRefusal: a write to a read-only mount fails with EROFS (wazero's
// mounts) or EPERM (wasmtime's read-only preopens lack the write right).
func readOnlyRefusal(msg string) bool {
	return strings.Contains(msg, "Read-only") || strings.Contains(msg, "Operation not permitted")
}

// TestPlantedSymlinks: links planted in the workspace on the host, which
// lead out of it, are not followed by the guest, on either engine.
func TestPlantedSymlinks(t *testing.T) {
	p := launch(t, 1)
	ws := t.TempDir()
	for name, target := range map[string]string{"passwd": "/etc/passwd", "etc": "/etc", "up": "../../../../../../../etc"} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	id := newSession(t, p, sdk.SessionSpec{Workspace: ws})
	for _, code := range []string{
		"print(open('passwd').read())",
		"print(open('/workspace/etc/passwd').read())",
		"import os\nprint(os.listdir('etc'))",
		"print(open('up/passwd').read())",
		"import os\nprint(os.stat('etc/passwd'))",
	} {
		o := execCode(t, p, id, code)
		if o.res.OK() || strings.Contains(o.stdout, "root:") || strings.Contains(o.stdout, "passwd") {
			t.Errorf("%q followed a link out of the workspace: %+v %.200q", code, o.res, o.stdout)
		}
	}
	expectOK(t, p, id, "print(open('mine', 'w').write('ok'))", "2\n")
}

func memoryError(t *testing.T, o output) {
	t.Helper()
	if o.res.OK() || (o.res.Error != sdk.ErrorMemory && o.res.Error != sdk.ErrorKernelDied) || o.res.Message == "" {
		t.Fatalf("memory bomb: %+v", o.res)
	}
}

func outsideRefused(t *testing.T, o output) {
	t.Helper()
	if o.res.OK() || o.res.Exception == nil || (o.res.Exception.Type != "FileNotFoundError" && o.res.Exception.Type != "PermissionError") {
		t.Fatalf("read outside the workspace: %+v stdout=%.100q", o.res, o.stdout)
	}
}

// TestMountsAndEnv checks the guest file system: the workspace is the
// read-write cwd, a skills mount is importable and read-only, the kernel
// file is read-only, and the session's environment is set, all on a
// pooled kernel that started before the session existed.
func TestMountsAndEnv(t *testing.T) {
	p := launch(t, 2)
	time.Sleep(500 * time.Millisecond) // let the pool start filling
	ws, skills := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(skills, "greet.py"), []byte("def run(name: str) -> str:\n    return 'hi ' + name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := newSession(t, p, sdk.SessionSpec{
		Workspace: ws, Env: map[string]string{"GREETING": "hello"},
		Mounts: []sdk.Mount{{Source: skills, Target: sdk.GuestSkills, ReadOnly: true}},
	})
	expectOK(t, p, id, "import os\nprint(os.getcwd(), os.environ['GREETING'])", "/workspace hello\n")
	expectOK(t, p, id, "from skills.greet import run\nprint(run('x'))", "hi x\n")
	expectOK(t, p, id, "open('note.txt', 'w').write('n')\nprint(sorted(os.listdir('.')))", "['note.txt']\n")
	if b, err := os.ReadFile(filepath.Join(ws, "note.txt")); err != nil || string(b) != "n" {
		t.Fatalf("workspace file on the host: %q %v", b, err)
	}
	o := execCode(t, p, id, "open('/mcpruntime/lib/skills/evil.py', 'w')")
	if o.res.OK() || !readOnlyRefusal(o.res.Message) {
		t.Fatalf("skills mount writable: %+v", o.res)
	}
	o = execCode(t, p, id, "import glob\nk = glob.glob('/mcpruntime/kernel/*.py')\nprint(len(k))\nopen(k[0], 'a')")
	if o.stdout != "1\n" || o.res.OK() || !readOnlyRefusal(o.res.Message) {
		t.Fatalf("kernel file: %q %+v", o.stdout, o.res)
	}
	// A second session on a pooled kernel must not see the first's env.
	other := newSession(t, p, sdk.SessionSpec{})
	expectOK(t, p, other, "import os\nprint(os.environ.get('GREETING'), os.listdir('.'))", "None []\n")
}
