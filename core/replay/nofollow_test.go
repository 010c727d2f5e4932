package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow/swaptest"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

const outsideSecret = "HOST SECRET: root only"

// A file and a directory of the workspace keep being swapped for symlinks
// to root-only files outside it while it is snapshotted: the store never
// holds the outside content (symlinks are recorded as symlinks).
func TestSnapshotRaceNeverStoresWhatASymlinkPointsTo(t *testing.T) {
	const iterations = 300
	ws, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(outside, "shadow"), outsideSecret)
	write(t, filepath.Join(outside, "d", "f"), outsideSecret)
	for _, p := range []string{filepath.Join(outside, "shadow"), filepath.Join(outside, "d", "f")} {
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(ws, "f"), "workspace file")
	write(t, filepath.Join(ws, "d", "f"), "workspace dir file")
	stopF := swaptest.Exchange(t, ws, "f", filepath.Join(outside, "shadow"))
	defer stopF()
	stopD := swaptest.Exchange(t, ws, "d", filepath.Join(outside, "d"))
	defer stopD()
	var files, links int
	for i := 0; i < iterations; i++ {
		// A fresh snapshotter reads every file (no cache).
		_, man, _, err := NewSnapshotter(ws).Snapshot()
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		for _, f := range man.Files {
			switch {
			case f.Path == "f" && f.Type == "file":
				files++
			case f.Path == "f" && f.Type == "symlink":
				links++
			}
		}
	}
	objs, err := os.ReadDir(filepath.Join(ws, Dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := os.ReadFile(filepath.Join(ws, Dir, "objects", o.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("SECRET")) {
			t.Fatalf("the store holds a host file from outside the workspace (object %s)", o.Name())
		}
	}
	if files == 0 || links == 0 {
		t.Fatalf("the race did not alternate: f recorded %d times as a file, %d as a symlink", files, links)
	}
	t.Logf("%d snapshots: f a file %d times, a symlink %d times; no host file stored", iterations, files, links)
}

// An object whose content does not match its id (damaged, or rewritten by
// sandbox code: the store is in the workspace) is refused, naming the
// object, before anything changes; so is an object that is a symlink.
func TestRestoreVerifiesObjects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, obj string)
		want   string
	}{
		{"same size, other content", func(t *testing.T, obj string) {
			if err := os.Chmod(obj, 0o644); err != nil {
				t.Fatal(err)
			}
			write(t, obj, "VERSION 1")
		}, "does not match its id"},
		{"symlink to a host file with the content", func(t *testing.T, obj string) {
			host := filepath.Join(t.TempDir(), "host")
			write(t, host, "version 1")
			if err := os.Remove(obj); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(host, obj); err != nil {
				t.Fatal(err)
			}
		}, "symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := t.TempDir()
			write(t, filepath.Join(ws, "a.txt"), "version 1")
			s := NewSnapshotter(ws)
			id, _, _, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(ws, "a.txt"), "version 2")
			sum := sha256.Sum256([]byte("version 1"))
			h := hex.EncodeToString(sum[:])
			tc.damage(t, filepath.Join(ws, Dir, "objects", h))
			_, err = s.Restore(id)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), h) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("restore: %v, want refused naming object %s", err, h)
			}
			if b, _ := os.ReadFile(filepath.Join(ws, "a.txt")); string(b) != "version 2" {
				t.Fatalf("a refused restore changed a.txt: %q", b)
			}
		})
	}
}

// A directory the restore writes into keeps being swapped for a symlink to
// a directory outside the workspace: nothing is ever written there.
func TestRestoreRaceNeverWritesOutside(t *testing.T) {
	const iterations = 200
	ws, outside := t.TempDir(), t.TempDir()
	for i := 0; i < 20; i++ {
		write(t, filepath.Join(ws, "d", "f"+string(rune('0'+i))), "content")
	}
	// d.alt, the other side of the swap, is left out of snapshots and
	// restores.
	s := NewSnapshotter(ws, "d.alt")
	id, _, _, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	root, err := nofollow.OpenRoot(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	stop := swaptest.Exchange(t, ws, "d", outside)
	defer stop()
	var ok int
	for i := 0; i < iterations; i++ {
		// Something to rewrite each time (written without following d).
		for j := 0; j < 20; j++ {
			_ = root.ReplaceFile("d/f"+string(rune('0'+j)), 0o644, func(f *os.File) error {
				_, err := f.WriteString("changed")
				return err
			})
		}
		// A restore may be refused (a symlink on its way); it must never
		// write through it.
		if _, err := s.Restore(id); err == nil {
			ok++
		}
		if ents, _ := os.ReadDir(outside); len(ents) > 0 {
			t.Fatalf("iteration %d: the restore wrote outside the workspace: %v", i, ents)
		}
	}
	if ok == 0 {
		t.Fatal("no restore completed: the test proves nothing")
	}
	t.Logf("%d restores racing a symlink swap, %d completed, nothing written outside", iterations, ok)
}
