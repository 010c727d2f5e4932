package guest

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

func newRuntime(t testing.TB, mem int64, closeOnDone bool) (*Runtime, string) {
	t.Helper()
	dir := testenv.PythonDir(t)
	rt, err := NewRuntime(context.Background(), RuntimeOptions{
		Wasm: filepath.Join(dir, "python.wasm"), CacheDir: filepath.Join(testenv.StateDir(t), "wazero-cache"),
		MemoryBytes: mem, CloseOnContextDone: closeOnDone,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt, filepath.Join(dir, "lib")
}

func runCode(t testing.TB, rt *Runtime, lib, code string, mounts ...Mount) (int, string, string, error) {
	var out, errb bytes.Buffer
	code1, err := rt.Run(context.Background(), RunOptions{
		Args: []string{"-c", code}, Env: []string{"PYTHONHOME=" + Prefix},
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, StdlibDir: lib, Mounts: mounts,
	})
	return code1, out.String(), errb.String(), err
}

func TestRunPrints(t *testing.T) {
	rt, lib := newRuntime(t, 256<<20, false)
	code, out, errs, err := runCode(t, rt, lib, "import json,re,collections,math,datetime,decimal,statistics,hashlib,time; time.sleep(0.01); print(json.dumps({'ok': True}))")
	if err != nil || code != 0 || out != "{\"ok\": true}\n" {
		t.Fatalf("code=%d err=%v out=%q stderr=%q", code, err, out, errs)
	}
}

func TestExitStatus(t *testing.T) {
	rt, lib := newRuntime(t, 256<<20, false)
	code, _, _, err := runCode(t, rt, lib, "import os; os._exit(9)")
	if err != nil || code != 9 {
		t.Fatalf("os._exit(9): code=%d err=%v", code, err)
	}
}

// TestReadOnlyAndNoSymlinks checks the two properties BindableFS adds to
// wazero's directory mounts.
func TestReadOnlyAndNoSymlinks(t *testing.T) {
	rt, lib := newRuntime(t, 256<<20, false)
	ws := t.TempDir()
	code, out, errs, err := runCode(t, rt, lib, `
import os
os.chdir('/workspace')
try:
    os.symlink('../../../../etc/passwd', 'p')
    print('symlink made')
except OSError as e:
    print('symlink refused', e.errno)
try:
    open('/usr/local/lib/python3.13/evil.py', 'w')
    print('stdlib writable')
except OSError as e:
    print('stdlib read-only', e.strerror)
for p in ('/etc/passwd', '../../etc/passwd', '/workspace/../../etc/passwd'):
    try:
        open(p).read(); print('read', p)
    except OSError as e:
        print('no', p)
`, Mount{FS: NewBindableFS(ws, false), Guest: "/workspace"})
	if err != nil || code != 0 {
		t.Fatalf("code=%d err=%v stderr=%s", code, err, errs)
	}
	if strings.Contains(out, "symlink made") || strings.Contains(out, "stdlib writable") || strings.Contains(out, "read ") {
		t.Fatalf("sandbox escape:\n%s", out)
	}
	t.Log(out)
}
