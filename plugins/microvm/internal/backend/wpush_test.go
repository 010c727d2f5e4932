package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// A workspace of 10,000 files pushed once is not looked at again: a push
// with nothing changed examines and sends nothing, and one with a file
// changed, one added, one deleted and a directory renamed sends just those.
func TestPushTransfersOnlyChanges(t *testing.T) {
	ws := t.TempDir()
	for i := range 10000 {
		write(t, filepath.Join(ws, fmt.Sprintf("d%02d/f%05d", i%50, i)), "x", 0o644)
	}
	a, g := startFakeGuest(t)
	s := newSyncer(ws, proto.TreeWorkspace, 1<<30)
	s.watch = true
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	push := func() syncStats {
		t.Helper()
		g.mu.Lock()
		g.received = map[string][]byte{}
		g.mu.Unlock()
		if err := s.push(ctx, a); err != nil {
			t.Fatal(err)
		}
		return s.pushStats
	}
	if st := push(); st.Sent != 10000 {
		t.Fatalf("first push sent %d files, want 10000", st.Sent)
	}
	if st := push(); st != (syncStats{}) {
		t.Fatalf("push with nothing changed: %+v, want nothing examined or sent", st)
	}
	write(t, filepath.Join(ws, "d07/f00007"), "changed", 0o644)
	write(t, filepath.Join(ws, "new/deep/file"), "new", 0o644)
	if err := os.Remove(filepath.Join(ws, "d08/f00008")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(ws, "d09"), filepath.Join(ws, "moved")); err != nil {
		t.Fatal(err)
	}
	st := push()
	// d07/f00007, new/deep/file and the 200 files of the moved directory.
	if st.Sent != 202 || st.Examined > 260 {
		t.Fatalf("push after changes: %+v, want 202 files sent and about as many examined", st)
	}
	g.mu.Lock()
	got := string(g.received["d07/f00007"]) + "," + string(g.received["new/deep/file"])
	g.mu.Unlock()
	if got != "changed,new" {
		t.Fatalf("guest received %q", got)
	}
	for _, gone := range []string{"d08/f00008", "d09", "d09/f00009"} {
		if _, ok := s.known[gone]; ok {
			t.Fatalf("%s still recorded as in the guest", gone)
		}
	}
	// A file written into the moved directory later is seen there.
	write(t, filepath.Join(ws, "moved/later"), "later", 0o644)
	write(t, filepath.Join(ws, "new/deep/file2"), "2", 0o644)
	if st := push(); st.Sent != 2 || st.Examined > 4 {
		t.Fatalf("push after two writes: %+v", st)
	}
	// What a pull writes into the workspace is not looked at again.
	g.mu.Lock()
	g.changed = []proto.Entry{{Path: "pulled", Dir: true, Mode: 0o755}, {Path: "pulled/file", Size: 6, Mode: 0o644}, {Path: "d10/f00010", Size: 6, Mode: 0o644}}
	g.content["pulled/file"], g.content["d10/f00010"] = []byte("guest!"), []byte("guest!")
	g.mu.Unlock()
	if err := s.pull(ctx, a); err != nil {
		t.Fatal(err)
	}
	if st := push(); st != (syncStats{}) {
		t.Fatalf("push after a pull: %+v, want nothing examined or sent", st)
	}
	write(t, filepath.Join(ws, "pulled/later"), "host", 0o644)
	if st := push(); st.Sent != 1 {
		t.Fatalf("a file written into a directory a pull created: %+v, want it sent", st)
	}
}
