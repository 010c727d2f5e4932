package guest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

// inTmpfs names the directory TestWasmtimeFullDiskIsENOSPC's re-executed
// self finds a small tmpfs mounted on.
const inTmpfs = "MCPRUNTIME_TEST_FULL_TMPFS"

// TestWasmtimeFullDiskIsENOSPC: a write that fills the workspace's file
// system reaches Python as ENOSPC on wasmtime (wazero can only say EIO, see
// full.go). The test re-executes itself in a user and mount namespace of
// its own (unshare(1), no privileges needed) with a 256 KiB tmpfs as the
// workspace.
func TestWasmtimeFullDiskIsENOSPC(t *testing.T) {
	if !WasmtimeAvailable {
		t.Skip("this build has no wasmtime")
	}
	dir := os.Getenv(inTmpfs)
	if dir == "" {
		dir = t.TempDir()
		cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
			`mount -t tmpfs -o size=256k tmpfs "$0" && exec "$1" -test.run '^TestWasmtimeFullDiskIsENOSPC$' -test.v -test.count=1`,
			dir, os.Args[0])
		cmd.Env = append(os.Environ(), inTmpfs+"="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a namespace with a tmpfs workspace: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "errno ENOSPC") {
			t.Fatalf("want ENOSPC reported:\n%s", out)
		}
		return
	}
	eng := newEngine(t, EngineWasmtime)
	py := testenv.PythonDir(t)
	mod, err := eng.Load(context.Background(), filepath.Join(py, "python.wasm"), "")
	if err != nil {
		t.Fatal(err)
	}
	code := "import errno\ntry:\n    with open('/workspace/big', 'wb') as f:\n        for _ in range(64):\n            f.write(b'x' * 65536)\n            f.flush()\nexcept OSError as e:\n    print('errno', errno.errorcode.get(e.errno))\nelse:\n    print('no error')\n"
	var out, errb bytes.Buffer
	status, err := mod.Run(context.Background(), RunOptions{
		Args: []string{"-c", code}, Env: []string{"PYTHONHOME=" + Prefix},
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		StdlibDir: filepath.Join(py, "lib"), Mounts: []Mount{{Dir: dir, Guest: "/workspace"}},
	})
	if err != nil || status != 0 {
		t.Fatalf("python: %d %v %s", status, err, errb.String())
	}
	t.Logf("%s", out.String())
	if strings.TrimSpace(out.String()) != "errno ENOSPC" {
		t.Fatalf("a write on a full file system: %q, want ENOSPC", out.String())
	}
}
