package main

import (
	"context"
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

// TestWorkspaceSync runs a session over a workspace of 10,000 files: after
// the first execution, an execution that changes nothing transfers nothing
// and looks at nothing on either side (counted); a file changed on the host
// between two executions is seen by the second; a file the guest writes is
// on the host when Execute returns; deletions go both ways.
func TestWorkspaceSync(t *testing.T) {
	needQEMU(t)
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ws := t.TempDir()
	for i := range 10000 {
		p := filepath.Join(ws, fmt.Sprintf("d%02d/f%05d", i%100, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	be := backend.New()
	js, _ := json.Marshal(map[string]any{"agent": filepath.Join(filepath.Dir(bin), cli.AgentName), "restore_standby": 0})
	if err := be.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer be.Close(ctx)
	const id = "sync"
	if err := be.CreateSession(ctx, &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: 5 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	run := func(code, want string) (push, pull backend.SyncStats) {
		t.Helper()
		res, out, err := execute(be, id, code, sdk.EventStdout, sdk.EventStderr)
		if err != nil || !res.OK() {
			t.Fatalf("exec %q: %v %+v %s", code, err, res, out)
		}
		if strings.TrimSpace(out) != want {
			t.Fatalf("exec %q printed %q, want %q", code, out, want)
		}
		push, pull, err = be.WorkspaceSync(id)
		if err != nil {
			t.Fatal(err)
		}
		return push, pull
	}
	run("import os\nprint(sum(len(f) for _, _, f in os.walk('/workspace')))", "10000")
	idle := func() {
		t.Helper()
		if push, pull := run("x = 1", ""); push != (backend.SyncStats{}) || pull != (backend.SyncStats{}) {
			t.Fatalf("execution with nothing changed: push %+v, pull %+v; want nothing looked at or sent", push, pull)
		}
	}
	idle()

	// Host → guest: a change and a deletion between two executions.
	if err := os.WriteFile(filepath.Join(ws, "d01/f00001"), []byte("changed on the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ws, "d02/f00002")); err != nil {
		t.Fatal(err)
	}
	push, _ := run("import os\nprint(open('/workspace/d01/f00001').read(), os.path.exists('/workspace/d02/f00002'))", "changed on the host False")
	if push.Sent != 1 || push.Removed != 1 || push.Examined > 4 {
		t.Fatalf("push of one change and one deletion: %+v", push)
	}

	// Guest → host: a new file in a new directory, a deleted file and a
	// deleted directory, all on the host when Execute returns.
	_, pull := run("import os, shutil\nos.makedirs('/workspace/out')\nopen('/workspace/out/result.txt', 'w').write('from the guest')\n"+
		"os.remove('/workspace/d03/f00003')\nshutil.rmtree('/workspace/d04')", "")
	if b, err := os.ReadFile(filepath.Join(ws, "out/result.txt")); err != nil || string(b) != "from the guest" {
		t.Fatalf("guest file on the host: %q %v", b, err)
	}
	for _, gone := range []string{"d03/f00003", "d04"} {
		if _, err := os.Lstat(filepath.Join(ws, gone)); !os.IsNotExist(err) {
			t.Fatalf("%s deleted in the guest is still on the host (%v)", gone, err)
		}
	}
	if pull.Pulled != 1 || pull.Examined > 120 { // d04 held 100 files: 100 events
		t.Fatalf("pull of one new file and two deletions: %+v", pull)
	}
	// The copy back is not sent again, and nothing else is looked at.
	idle()
}
