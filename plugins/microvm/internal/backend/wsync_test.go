package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow/swaptest"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

const (
	hostSecret = "HOST SECRET: root only"
	wsContent  = "workspace content"
)

// fakeGuest answers the agent's file operations over a pipe: it keeps what
// the host wrote, answers scan with changed and reads from content.
type fakeGuest struct {
	mu       sync.Mutex
	received map[string][]byte // path -> bytes written, as sent
	changed  []proto.Entry
	content  map[string][]byte
}

func startFakeGuest(t *testing.T) (*agentClient, *fakeGuest) {
	t.Helper()
	host, guest := net.Pipe()
	g := &fakeGuest{received: map[string][]byte{}, content: map[string][]byte{}}
	a := newAgentClient(host)
	t.Cleanup(func() { host.Close(); guest.Close() })
	go func() {
		for {
			_, _, payload, err := proto.ReadEnvelope(guest)
			if err != nil {
				return
			}
			m := &proto.Msg{}
			if err := json.Unmarshal(payload, m); err != nil {
				return
			}
			r := &proto.Msg{ID: m.ID, Reply: true}
			g.mu.Lock()
			switch m.Op {
			case proto.OpWrite:
				if m.Offset == 0 {
					g.received[m.Path] = nil
				}
				g.received[m.Path] = append(g.received[m.Path], m.Data...)
			case proto.OpWriteBatch:
				for _, f := range m.Files {
					g.received[f.Path] = append([]byte(nil), f.Data...)
				}
			case proto.OpScan:
				r.Changed = g.changed
			case proto.OpReadBatch:
				for _, f := range m.Files {
					if c, ok := g.content[f.Path]; ok {
						r.Files = append(r.Files, proto.File{Path: f.Path, Data: c})
					}
				}
			case proto.OpRead:
				c, ok := g.content[m.Path]
				if !ok {
					r.Err = "no such file"
				} else {
					r.Data, r.EOF = c[min(int(m.Offset), len(c)):], true
				}
			}
			g.mu.Unlock()
			b, _ := json.Marshal(r)
			if proto.WriteEnvelope(guest, proto.KindControl, 0, b) != nil {
				return
			}
		}
	}()
	return a, g
}

func write(t *testing.T, p, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// Another session sharing the workspace swaps a file, and a directory, for
// symlinks to root-only host files while the workspace is pushed into a
// VM, over and over: what the VM receives is workspace content, never what
// the symlinks point to.
func TestPushNeverSendsWhatASymlinkPointsTo(t *testing.T) {
	const iterations = 300
	ws, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "shadow"), hostSecret, 0o600)
	write(t, filepath.Join(outside, "d", "f"), hostSecret, 0o600)
	write(t, filepath.Join(ws, "f"), wsContent, 0o644)
	write(t, filepath.Join(ws, "d", "f"), wsContent, 0o644)
	stopF := swaptest.Exchange(t, ws, "f", filepath.Join(outside, "shadow"))
	defer stopF()
	stopD := swaptest.Exchange(t, ws, "d", filepath.Join(outside, "d"))
	defer stopD()
	a, g := startFakeGuest(t)
	s := newSyncer(ws, proto.TreeWorkspace, 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var delivered int
	for i := 0; i < iterations; i++ {
		s.reset()
		if err := s.push(ctx, a); err != nil {
			t.Fatalf("iteration %d: push: %v", i, err)
		}
		g.mu.Lock()
		for p, b := range g.received {
			if bytes.Contains(b, []byte("SECRET")) {
				g.mu.Unlock()
				t.Fatalf("iteration %d: the VM received a host file outside the workspace as %s: %q", i, p, b)
			}
			if string(b) == wsContent {
				delivered++
			}
		}
		g.received = map[string][]byte{}
		g.mu.Unlock()
	}
	if delivered == 0 {
		t.Fatal("no workspace file was ever delivered: the test proves nothing")
	}
	t.Logf("%d pushes, %d workspace files delivered, no host file", iterations, delivered)
}

// Copying back never writes through a symlink in the host workspace: a
// symlinked file is replaced by the guest's file, a symlinked directory is
// refused (reported), and nothing outside the workspace changes.
func TestPullDoesNotWriteThroughSymlinks(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "shadow"), hostSecret, 0o600)
	if err := os.MkdirAll(filepath.Join(outside, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link": filepath.Join(outside, "shadow"), "d": filepath.Join(outside, "d")} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	a, g := startFakeGuest(t)
	g.changed = []proto.Entry{
		{Path: "d", Dir: true, Mode: 0o755},
		{Path: "d/x", Size: 3, Mode: 0o644},
		{Path: "link", Size: 3, Mode: 0o644},
		{Path: "ok/y", Size: 3, Mode: 0o644},
	}
	for _, e := range g.changed {
		g.content[e.Path] = []byte("new")
	}
	s := newSyncer(ws, proto.TreeWorkspace, 1<<30)
	err := s.pull(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "d, d/x") || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("pull: %v, want d and d/x refused", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "shadow")); string(b) != hostSecret {
		t.Fatalf("written through the symlink: %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Join(outside, "d")); len(ents) != 0 {
		t.Fatalf("written below a symlinked directory: %v", ents)
	}
	for _, p := range []string{"link", "ok/y"} {
		fi, err := os.Lstat(filepath.Join(ws, p))
		b, _ := os.ReadFile(filepath.Join(ws, p))
		if err != nil || !fi.Mode().IsRegular() || string(b) != "new" {
			t.Fatalf("%s: %v %q", p, err, b)
		}
	}
}
