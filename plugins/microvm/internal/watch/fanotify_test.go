package watch

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

// fsTree mounts a file system of its own (a tmpfs: file handles need
// Linux 6.7) on a temporary directory and makes the tree's root in it,
// beside a directory outside the tree.
func fsTree(t *testing.T) (mnt, root string) {
	t.Helper()
	mnt = t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	root = filepath.Join(mnt, "ws")
	for _, d := range []string{root, filepath.Join(mnt, "outside")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return mnt, root
}

func drainSorted(t *testing.T, w *FS) ([]string, bool) {
	t.Helper()
	dirty, lost, err := w.Drain()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range dirty {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, lost
}

// TestFSReportsChangesAnywhereBelowTheRoot: one mark sees entries made in
// directories created after it, moves, deletions and writes, names them
// below the root, and ignores the file system outside the root.
func TestFSReportsChangesAnywhereBelowTheRoot(t *testing.T) {
	mnt, root := fsTree(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a/old.txt"), []byte("x"), 0o644))
	w, err := NewFS(root)
	if err != nil {
		t.Skipf("fanotify with file handles unavailable here: %v", err)
	}
	defer w.Close()
	if got, lost := drainSorted(t, w); len(got) != 0 || lost {
		t.Fatalf("nothing happened yet, drained %v lost=%v", got, lost)
	}
	must(os.MkdirAll(filepath.Join(root, "new/deep"), 0o755))            // dirs made after the mark
	must(os.WriteFile(filepath.Join(root, "new/deep/f"), nil, 0o644))    // a file in one of them
	must(os.WriteFile(filepath.Join(root, "a/b/g"), []byte("1"), 0o644)) // a file in an old dir
	must(os.Rename(filepath.Join(root, "a/old.txt"), filepath.Join(root, "moved.txt")))
	must(os.WriteFile(filepath.Join(root, "top"), nil, 0o644))
	must(os.WriteFile(filepath.Join(mnt, "outside/ignored"), nil, 0o644))
	got, lost := drainSorted(t, w)
	want := []string{"a/b/g", "a/old.txt", "moved.txt", "new", "new/deep", "new/deep/f", "top"}
	if lost || !reflect.DeepEqual(got, want) {
		t.Fatalf("drained %v lost=%v, want %v", got, lost, want)
	}
	// A directory removed before the drain: its children's events have
	// a stale handle, and its own removal names it in its parent.
	must(os.WriteFile(filepath.Join(root, "new/deep/h"), nil, 0o644))
	must(os.RemoveAll(filepath.Join(root, "new")))
	got, _ = drainSorted(t, w)
	if !reflect.DeepEqual(got, []string{"new"}) {
		t.Fatalf("after removing new/: drained %v, want [new]", got)
	}
}
