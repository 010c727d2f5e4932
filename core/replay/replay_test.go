package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogAppendRead(t *testing.T) {
	ws := t.TempDir()
	l, err := OpenLog(ws, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := l.Append(&Entry{Step: i, Session: "s1", Code: fmt.Sprintf("x = %d\n", i), OK: true}); err != nil {
			t.Fatal(err)
		}
		// every append leaves whole lines only
		b, _ := os.ReadFile(l.Path())
		if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != i {
			t.Fatalf("after %d appends: %q", i, b)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if !json.Valid(line) {
				t.Fatalf("invalid line %q", line)
			}
		}
	}
	entries, problems, err := l.Read()
	if err != nil || len(problems) != 0 || len(entries) != 3 || entries[2].Code != "x = 3\n" {
		t.Fatalf("read: %v %v %+v", err, problems, entries)
	}
	if _, err := OpenLog(ws, "../evil"); err == nil {
		t.Fatal("bad session id accepted")
	}
}

func TestLogCorruptTail(t *testing.T) {
	ws := t.TempDir()
	l, _ := OpenLog(ws, "s1")
	l.Append(&Entry{Step: 1, OK: true})
	l.Append(&Entry{Step: 2, OK: true})
	// a crash mid-write leaves half a line
	f, _ := os.OpenFile(l.Path(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step":3,"code":"pri`)
	f.Close()
	entries, problems, err := l.Read()
	if err != nil || len(entries) != 2 || len(problems) != 1 || problems[0].Line != 3 || !strings.Contains(problems[0].Reason, "truncated") {
		t.Fatalf("truncated tail: %v %+v %+v", err, entries, problems)
	}
	// the next writer must not glue its line onto the broken one
	if err := l.Append(&Entry{Step: 3, OK: true}); err != nil {
		t.Fatal(err)
	}
	entries, problems, _ = l.Read()
	if len(entries) != 3 || entries[2].Step != 3 || len(problems) != 1 {
		t.Fatalf("after append: %+v %+v", entries, problems)
	}
	// garbage in the middle, binary junk, empty lines
	f, _ = os.OpenFile(l.Path(), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("\n\x00\xff garbage\n\n"))
	f.Close()
	l.Append(&Entry{Step: 4, OK: true})
	entries, problems, err = l.Read()
	if err != nil || len(entries) != 4 || len(problems) != 2 {
		t.Fatalf("garbage: %v %+v %+v", err, entries, problems)
	}
	list, err := List(ws)
	if err != nil || len(list) != 1 || list[0].Steps != 4 || len(list[0].Problems) != 2 {
		t.Fatalf("list: %v %+v", err, list)
	}
	if got, _, err := Show(ws, "s1", 2); err != nil || got[0].Step != 2 {
		t.Fatalf("show step 2: %v %+v", err, got)
	}
	if _, _, err := Show(ws, "s1", 9); err == nil {
		t.Fatal("show missing step: no error")
	}
	if _, _, err := Show(ws, "nope", -1); err == nil {
		t.Fatal("show missing session: no error")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(path, old, old)
}

func count(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

func TestSnapshotDedup(t *testing.T) {
	ws := t.TempDir()
	write(t, filepath.Join(ws, "a.txt"), "alpha")
	write(t, filepath.Join(ws, "sub", "b.txt"), "beta")
	write(t, filepath.Join(ws, "sub", "copy.txt"), "alpha") // same content as a.txt
	write(t, filepath.Join(ws, "big.bin"), strings.Repeat("x", 1<<20))
	write(t, filepath.Join(ws, ".mcpruntime", "daemon.log"), "excluded")
	s := NewSnapshotter(ws)
	var first string
	for i := 0; i < 1000; i++ {
		id, man, st, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = id
			if st.Files != 4 || st.NewObjects != 3 || len(man.Files) != 5 {
				t.Fatalf("first snapshot: %+v %+v", st, man.Files)
			}
			continue
		}
		if id != first || st.Hashed != 0 || st.NewObjects != 0 || st.NewManifest {
			t.Fatalf("snapshot %d of an unchanged workspace cost something: %s %+v", i, id, st)
		}
	}
	if n := count(t, filepath.Join(ws, Dir, "objects")); n != 3 {
		t.Fatalf("objects: %d, want 3 (each distinct content once)", n)
	}
	if n := count(t, filepath.Join(ws, Dir, "manifests")); n != 1 {
		t.Fatalf("manifests: %d, want 1", n)
	}
	// One changed file: one new object, one new manifest.
	write(t, filepath.Join(ws, "a.txt"), "alpha 2")
	id, _, st, err := s.Snapshot()
	if err != nil || id == first || st.NewObjects != 1 || !st.NewManifest || st.Hashed != 1 {
		t.Fatalf("after a change: %v %+v", err, st)
	}
	// A fresh snapshotter (new process) reads files again but stores nothing.
	_, _, st, _ = NewSnapshotter(ws).Snapshot()
	if st.NewObjects != 0 || st.NewManifest {
		t.Fatalf("fresh snapshotter stored again: %+v", st)
	}
}

func TestSnapshotRestore(t *testing.T) {
	ws := t.TempDir()
	write(t, filepath.Join(ws, "keep.txt"), "v1")
	write(t, filepath.Join(ws, "gone.txt"), "will be deleted later, then restored")
	write(t, filepath.Join(ws, "d", "e", "f.txt"), "deep")
	write(t, filepath.Join(ws, "huge.bin"), strings.Repeat("h", 4096))
	os.Symlink("keep.txt", filepath.Join(ws, "link"))
	s := NewSnapshotter(ws)
	s.MaxFileSize = 1024
	id, man, _, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := man.Skipped["huge.bin"]; !ok {
		t.Fatalf("huge.bin not skipped: %+v", man.Skipped)
	}
	write(t, filepath.Join(ws, "keep.txt"), "v2")
	os.Remove(filepath.Join(ws, "gone.txt"))
	write(t, filepath.Join(ws, "new.txt"), "new")
	write(t, filepath.Join(ws, "newdir", "x.txt"), "x")
	os.RemoveAll(filepath.Join(ws, "d"))
	write(t, filepath.Join(ws, "huge.bin"), strings.Repeat("H", 4096))
	if _, _, _, err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Restore(id)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"keep.txt": "v1", "gone.txt": "will be deleted later, then restored", "d/e/f.txt": "deep", "link": "v1", "huge.bin": strings.Repeat("H", 4096)} {
		if b, err := os.ReadFile(filepath.Join(ws, path)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", path, b, err)
		}
	}
	for _, path := range []string{"new.txt", "newdir"} {
		if _, err := os.Lstat(filepath.Join(ws, path)); err == nil {
			t.Errorf("%s survived the restore", path)
		}
	}
	if _, ok := rs.NotRestored["huge.bin"]; !ok {
		t.Errorf("huge.bin not reported: %+v", rs)
	}
	if _, err := os.Stat(filepath.Join(ws, Dir, "objects")); err != nil {
		t.Errorf(".replay touched: %v", err)
	}
	// The restored workspace snapshots to the same id.
	if again, _, _, _ := s.Snapshot(); again != id {
		t.Errorf("restored workspace differs from the snapshot")
	}
	// A damaged store fails before anything changes.
	write(t, filepath.Join(ws, "keep.txt"), "v3")
	objs, _ := os.ReadDir(filepath.Join(ws, Dir, "objects"))
	for _, o := range objs {
		os.Chmod(filepath.Join(ws, Dir, "objects", o.Name()), 0o644)
		os.Remove(filepath.Join(ws, Dir, "objects", o.Name()))
	}
	if _, err := s.Restore(id); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("damaged store: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "keep.txt")); string(b) != "v3" {
		t.Fatalf("failed restore changed files: %q", b)
	}
	if _, err := LoadManifest(ws, "../../etc/passwd"); err == nil {
		t.Fatal("bad manifest id accepted")
	}
}

// BenchmarkStepOverhead is what the recorder adds inline to each step:
// a snapshot of an unchanged 200-file workspace and an fsynced log line.
func BenchmarkStepOverhead(b *testing.B) {
	ws := b.TempDir()
	for i := 0; i < 200; i++ {
		p := filepath.Join(ws, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 10<<10), 0o644)
		old := time.Now().Add(-time.Minute)
		os.Chtimes(p, old, old)
	}
	s := NewSnapshotter(ws)
	l, _ := OpenLog(ws, "bench")
	s.Snapshot()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, _, _, err := s.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Append(&Entry{Step: i + 1, Code: "x = 1", WorkspaceSnapshot: id}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotOnly(b *testing.B) {
	ws := b.TempDir()
	for i := 0; i < 200; i++ {
		p := filepath.Join(ws, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 10<<10), 0o644)
		old := time.Now().Add(-time.Minute)
		os.Chtimes(p, old, old)
	}
	s := NewSnapshotter(ws)
	s.Snapshot()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Snapshot()
	}
}

func BenchmarkAppendOnly(b *testing.B) {
	l, _ := OpenLog(b.TempDir(), "bench")
	for i := 0; i < b.N; i++ {
		l.Append(&Entry{Step: i + 1, Code: "x = 1"})
	}
}

// The store is in the workspace, so sandbox code can forge manifests and
// replace its directories: a restore must not write, read or create
// anything outside the workspace whatever the manifest says.
func TestRestoreRefusesForgedManifests(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	write(t, secret, "host secret")
	forge := func(t *testing.T, ws string, files ...FileEntry) string {
		t.Helper()
		b, err := json.Marshal(Manifest{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		id := hex.EncodeToString(sum[:])
		write(t, filepath.Join(ws, Dir, "manifests", id+".json"), string(b))
		return id
	}
	object := func(t *testing.T, ws, content string) string {
		sum := sha256.Sum256([]byte(content))
		h := hex.EncodeToString(sum[:])
		write(t, filepath.Join(ws, Dir, "objects", h), content)
		return h
	}
	rel, _ := filepath.Rel("/", outside)

	t.Run("content id that climbs out of the store", func(t *testing.T) {
		ws := t.TempDir()
		object(t, ws, "x")
		id := forge(t, ws, FileEntry{Path: "stolen", Type: "file", Mode: 0o644, Size: 11, Hash: "../../../../../../../../" + rel + "/secret"})
		if _, err := NewSnapshotter(ws).Restore(id); err == nil || !strings.Contains(err.Error(), "bad content id") {
			t.Fatalf("restore: %v, want refused", err)
		}
		if _, err := os.Lstat(filepath.Join(ws, "stolen")); err == nil {
			t.Fatal("a host file was copied into the workspace")
		}
	})
	t.Run("symlink parent out of the workspace", func(t *testing.T) {
		ws := t.TempDir()
		h := object(t, ws, "planted")
		id := forge(t, ws,
			FileEntry{Path: "a", Type: "symlink", Mode: 0o777, Target: outside},
			FileEntry{Path: "a/planted", Type: "file", Mode: 0o644, Size: 7, Hash: h},
			FileEntry{Path: "a/newdir/deep", Type: "dir", Mode: 0o755})
		if _, err := NewSnapshotter(ws).Restore(id); err == nil || !strings.Contains(err.Error(), "out of the workspace") {
			t.Fatalf("restore: %v, want refused", err)
		}
		for _, p := range []string{"planted", "newdir"} {
			if _, err := os.Lstat(filepath.Join(outside, p)); err == nil {
				t.Fatalf("the restore wrote %s outside the workspace", p)
			}
		}
	})
	t.Run("object store replaced by a symlink", func(t *testing.T) {
		ws := t.TempDir()
		sum := sha256.Sum256([]byte("host secret"))
		h := hex.EncodeToString(sum[:])
		write(t, filepath.Join(outside, "store", h), "host secret")
		id := forge(t, ws, FileEntry{Path: "stolen", Type: "file", Mode: 0o644, Size: 11, Hash: h})
		if err := os.Symlink(filepath.Join(outside, "store"), filepath.Join(ws, Dir, "objects")); err != nil {
			t.Fatal(err)
		}
		if _, err := NewSnapshotter(ws).Restore(id); err == nil || !strings.Contains(err.Error(), "not trusted") {
			t.Fatalf("restore: %v, want refused", err)
		}
	})
	if _, err := ReadStateInfo(t.TempDir(), "../../"+rel+"/secret"); err == nil || !strings.Contains(err.Error(), "bad state reference") {
		t.Fatalf("state info outside the store: %v, want refused", err)
	}
}
