package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

// listing is the Python that prints the guest workspace: every directory
// and file (size and content for small files) in sorted order.
const listing = `import os
out = []
for d, ds, fs in os.walk('/workspace'):
    ds.sort()
    for n in sorted(ds + fs):
        p = os.path.join(d, n)
        rel = os.path.relpath(p, '/workspace')
        if os.path.islink(p):
            out.append('L ' + rel)
        elif os.path.isdir(p):
            out.append('D ' + rel)
        else:
            st = os.stat(p)
            data = open(p, 'rb').read() if st.st_size < 4096 else b''
            out.append('F %s %o %d %s' % (rel, st.st_mode & 0o777, st.st_size, data.decode()))
print('\n'.join(sorted(out)))
`

// hostListing is listing's output for the host workspace, symlinks left
// out (the guest never sees them).
func hostListing(t *testing.T, ws string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(ws, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == ws {
			return err
		}
		rel, _ := filepath.Rel(ws, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
		case fi.IsDir():
			out = append(out, "D "+rel)
		default:
			data := ""
			if fi.Size() < 4096 {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				data = string(b)
			}
			out = append(out, fmt.Sprintf("F %s %o %d %s", rel, fi.Mode().Perm(), fi.Size(), data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestWorkspaceImage: a session attached from a prebuilt workspace image
// sees exactly the host workspace, including a file changed, one added
// and one removed on the host after the image was built, just before the
// attach (the push sends only those); a symlink in the workspace, to a
// host file or directory, brings nothing of the host into the VM; guest
// changes to files that came with the image reach the host (the agent's
// baseline is the image's manifest: nothing else is copied back).
func TestWorkspaceImage(t *testing.T) {
	needQEMU(t)
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	outside := t.TempDir()
	const secret = "host-secret-7d2e91"
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	write := func(rel, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(ws, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		write(fmt.Sprintf("d%d/f%03d.txt", i%10, i), fmt.Sprintf("file %d", i), 0o644)
	}
	write("a.txt", "alpha", 0o644)
	write("run.sh", "#!/bin/sh\n", 0o750)
	write("gone.txt", "removed on the host", 0o644)
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"evil": filepath.Join(outside, "secret"), "evildir": outside} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}

	be := backend.New(backend.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})))
	js, _ := json.Marshal(map[string]any{"agent": filepath.Join(filepath.Dir(bin), cli.AgentName), "restore_standby": 0})
	if err := be.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer be.Close(ctx)
	run := func(id, code string) string {
		t.Helper()
		res, out, err := execute(be, id, code, sdk.EventStdout, sdk.EventStderr)
		if err != nil || !res.OK() {
			t.Fatalf("exec %q: %v %+v %s", code, err, res, out)
		}
		return strings.TrimSpace(out)
	}
	spec := func(id string) *sdk.SessionSpec {
		return &sdk.SessionSpec{ID: id, Workspace: ws, Limits: sdk.Limits{Timeout: 5 * time.Minute}}
	}

	// The first session of the workspace waits for its image.
	if err := be.CreateSession(ctx, spec("first")); err != nil {
		t.Fatal(err)
	}
	sameListing(t, "first session", run("first", listing), hostListing(t, ws))
	if img, push, err := be.WorkspaceAttach("first"); err != nil || !img || push.Sent != 0 {
		t.Fatalf("first session: from image %v, attach push %+v, %v; want the image and nothing sent", img, push, err)
	}
	if err := be.DestroySession(ctx, "first"); err != nil {
		t.Fatal(err)
	}

	// The next image is built in the background; then the host changes.
	waitFor(t, "the next workspace image", 2*time.Minute, func() bool { return be.WorkspaceImageReady(ws) })
	waitFor(t, "the pool", 3*time.Minute, func() bool { return be.PoolReady() == 1 })
	write("a.txt", "changed on the host just before the attach", 0o644)
	write("d3/new.txt", "new on the host", 0o600)
	if err := os.Remove(filepath.Join(ws, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := be.CreateSession(ctx, spec("second")); err != nil {
		t.Fatal(err)
	}
	sameListing(t, "second session", run("second", listing), hostListing(t, ws))
	img, push, err := be.WorkspaceAttach("second")
	if err != nil || !img || push.Sent != 2 || push.Removed != 1 {
		t.Fatalf("second session: from image %v, attach push %+v, %v; want the image, 2 files sent, 1 removed", img, push, err)
	}
	if out := run("second", fmt.Sprintf(`import os
hits = [os.path.join(d, n) for d, _, fs in os.walk('/') if not d.startswith(('/proc', '/sys', '/dev')) for n in fs
        if os.path.isfile(os.path.join(d, n)) and os.path.getsize(os.path.join(d, n)) < 1<<20 and b%q in open(os.path.join(d, n), 'rb').read()]
print(hits, os.path.lexists('/workspace/evil'), os.path.lexists('/workspace/evildir'))`, secret)); out != "[] False False" {
		t.Fatalf("the host file behind a workspace symlink reached the VM: %s", out)
	}
	if out := run("second", "import hashlib\nprint(hashlib.sha256(open('/workspace/big.bin','rb').read()).hexdigest() == "+fmt.Sprintf("%q", fmt.Sprintf("%x", sha256.Sum256(big)))+")"); out != "True" {
		t.Fatalf("big.bin in the guest differs: %s", out)
	}

	// Guest → host: an image file changed, one removed, one added; only
	// those are copied back.
	run("second", "import os\nopen('/workspace/d1/f001.txt','w').write('guest')\nos.remove('/workspace/d2/f002.txt')\nopen('/workspace/g.txt','w').write('from the guest')")
	_, pull, err := be.WorkspaceSync("second")
	if err != nil {
		t.Fatal(err)
	}
	if pull.Pulled != 2 || pull.Removed != 1 {
		t.Fatalf("pull after guest changes: %+v, want 2 files copied back and 1 removed", pull)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "d1/f001.txt")); err != nil || string(b) != "guest" {
		t.Fatalf("d1/f001.txt on the host: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "d2/f002.txt")); !os.IsNotExist(err) {
		t.Fatalf("d2/f002.txt still on the host: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "g.txt")); err != nil || string(b) != "from the guest" {
		t.Fatalf("g.txt on the host: %q %v", b, err)
	}

	// A snapshot of a VM whose disk is an image copies that image: the
	// fork's guest finds on its disk what its memory says is there.
	run("second", "kept = 42")
	snap, err := be.Snapshot(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Restore(ctx, snap.ID, spec("fork")); err != nil {
		t.Fatal(err)
	}
	if out := run("fork", "print(kept)"); out != "42" {
		t.Fatalf("fork: %q", out)
	}
	sameListing(t, "fork", run("fork", listing), hostListing(t, ws))
	sameListing(t, "second after the snapshot", run("second", listing), hostListing(t, ws))

	// The first execution after an attach changes files: its scan needs
	// the image's manifest before the background read would have begun
	// (an image with nothing to send at attach: no host write made the
	// guest read it earlier), and sees changes in the image's
	// directories and in new ones. The image kept now predates the
	// second session's changes: a session takes it, and the next one is
	// built from the workspace as it is.
	for _, id := range []string{"second", "fork"} {
		if err := be.DestroySession(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the pool", 3*time.Minute, func() bool { return be.PoolReady() == 1 })
	if err := be.CreateSession(ctx, spec("stale")); err != nil {
		t.Fatal(err)
	}
	if err := be.DestroySession(ctx, "stale"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next workspace image", 2*time.Minute, func() bool { return be.WorkspaceImageReady(ws) })
	waitFor(t, "the pool", 3*time.Minute, func() bool { return be.PoolReady() == 1 })
	if err := be.CreateSession(ctx, spec("third")); err != nil {
		t.Fatal(err)
	}
	if img, push, err := be.WorkspaceAttach("third"); err != nil || !img || push.Sent != 0 || push.Removed != 0 {
		t.Fatalf("third session: from image %v, attach push %+v, %v; want the image and nothing sent", img, push, err)
	}
	run("third", "import os\nopen('/workspace/d4/f004.txt','w').write('third')\nos.remove('/workspace/d5/f005.txt')\nos.makedirs('/workspace/n1/n2')\nopen('/workspace/n1/n2/deep.txt','w').write('deep')")
	for rel, want := range map[string]string{"d4/f004.txt": "third", "n1/n2/deep.txt": "deep"} {
		if b, err := os.ReadFile(filepath.Join(ws, rel)); err != nil || string(b) != want {
			t.Fatalf("%s on the host after the third session's first execution: %q %v", rel, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "d5/f005.txt")); !os.IsNotExist(err) {
		t.Fatalf("d5/f005.txt still on the host: %v", err)
	}
	sameListing(t, "third", run("third", listing), hostListing(t, ws))
}

// sameListing fails the test at the first line where the guest's listing
// differs from the host's.
func sameListing(t *testing.T, who, got, want string) {
	t.Helper()
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("%s: line %d of the workspace listing is %q, the host's %q (%d lines, host %d)", who, i+1, gl, wl, len(g), len(w))
		}
	}
}

// testWriter sends the backend's log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
