package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

// TestLargeWorkspace: a 2 GiB file in the workspace of a 256 MiB VM is read
// whole from Python (the guest's copy is on its workspace disk, not in its
// memory), and its data arrives where it was. The file is sparse on the
// host apart from three 1 MiB pieces of random data (at the start, in the
// middle, at the end), so the test does not spend minutes copying zeros
// under emulation; reading it in the guest still goes through all 2 GiB.
//
// Both ways a new session gets its workspace: files sent at attach (the
// big ones in the background behind placeholders) and a prebuilt image.
func TestLargeWorkspace(t *testing.T) {
	for _, images := range []bool{false, true} {
		t.Run(fmt.Sprintf("workspace_image=%v", images), func(t *testing.T) { testLargeWorkspace(t, images) })
	}
}

func testLargeWorkspace(t *testing.T, images bool) {
	needQEMU(t)
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ws := t.TempDir()
	const size = 2 << 30
	f, err := os.Create(filepath.Join(ws, "big"))
	if err != nil {
		t.Fatal(err)
	}
	piece := make([]byte, 1<<20)
	if _, err := rand.Read(piece); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, size / 2, size - 1<<20} {
		if _, err := f.WriteAt(piece, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "piece"), piece, 0o644); err != nil {
		t.Fatal(err)
	}
	// Real data, sent in the background like the big file: the first
	// execution reads it at once, so it waits for its content.
	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	be := backend.New()
	js, _ := json.Marshal(map[string]any{"agent": filepath.Join(filepath.Dir(bin), cli.AgentName), "restore_standby": 0,
		"memory": "256MiB", "max_workspace": "3GiB", "workspace_image": images})
	if err := be.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer be.Close(ctx)
	const id = "large"
	if err := be.CreateSession(ctx, &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: 5 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	code := `
import hashlib
print(hashlib.sha256(open('/workspace/data.bin', 'rb').read()).hexdigest())
n, ok = 0, True
piece = open('/workspace/piece', 'rb').read()
with open('/workspace/big', 'rb') as f:
    while True:
        b = f.read(8 << 20)
        if not b:
            break
        for off in (0, 1 << 30, (2 << 30) - (1 << 20)):
            if n <= off < n + len(b):
                ok = ok and b[off - n:off - n + len(piece)] == piece
        n += len(b)
mem = [l for l in open('/proc/meminfo') if l.startswith('MemTotal')][0].split()[1]
print(n, ok, int(mem) < 300 * 1024)
`
	res, out, err := execute(be, id, code, sdk.EventStdout, sdk.EventStderr)
	if err != nil || !res.OK() {
		t.Fatalf("read the 2 GiB file: %v %+v %s", err, res, out)
	}
	if got, want := strings.TrimSpace(out), hex.EncodeToString(sum[:])+"\n2147483648 True True"; got != want {
		t.Fatalf("read the 2 GiB file in a 256 MiB VM: %q, want %q: the 3 MiB file's digest, then the big file's size, its data in place, and a VM of under 300 MiB", got, want)
	}

}
