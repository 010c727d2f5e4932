//go:build linux

package nofollow

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow/swaptest"

	"golang.org/x/sys/unix"
)

const (
	secret = "HOST SECRET: root only"
	inside = "workspace content"
)

// modes runs f with openat2 and with the per-component fallback.
func modes(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", func(t *testing.T) {
		noOpenat2.Store(false)
		fd, err := openat2(unix.AT_FDCWD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("this kernel has no openat2: the fallback covers it")
		}
		if err == nil {
			unix.Close(fd)
		}
		f(t)
		if noOpenat2.Load() {
			t.Fatal("openat2 was given up on although the kernel has it")
		}
	})
	t.Run("fallback", func(t *testing.T) {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
		f(t)
	})
}

// fixture is a root directory and, outside it, a 0600 secret and a
// directory holding a file of the same name.
type fixture struct {
	root, outside, secretFile string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	x := fixture{root: t.TempDir(), outside: t.TempDir()}
	x.secretFile = filepath.Join(x.outside, "shadow")
	must(t, os.WriteFile(x.secretFile, []byte(secret), 0o600))
	must(t, os.MkdirAll(filepath.Join(x.outside, "d"), 0o700))
	must(t, os.WriteFile(filepath.Join(x.outside, "d", "f"), []byte(secret), 0o600))
	must(t, os.MkdirAll(filepath.Join(x.root, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(x.root, "d", "f"), []byte(inside), 0o644))
	must(t, os.WriteFile(filepath.Join(x.root, "f"), []byte(inside), 0o644))
	return x
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const raceIterations = 500

// The harness itself: a reader that opens by path does get the secret, so
// the race below is real.
func TestRaceHarnessLeaksThroughPathOpen(t *testing.T) {
	x := newFixture(t)
	stop := swaptest.Exchange(t, x.root, "f", x.secretFile)
	defer stop()
	for i := 0; i < 20000; i++ {
		b, err := os.ReadFile(filepath.Join(x.root, "f"))
		if err == nil && string(b) == secret {
			t.Logf("os.ReadFile leaked the secret after %d iterations", i+1)
			return
		}
	}
	t.Fatal("the swap never showed through os.ReadFile: the race harness does not work")
}

// A file swapped for a symlink to a root-only file outside the root, over
// and over while it is being read: the reader gets the file or an error,
// never what the symlink points to.
func TestRaceSwapFileForSymlink(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		stop := swaptest.Exchange(t, x.root, "f", x.secretFile)
		defer stop()
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()
		var ok, refused int
		// At least raceIterations, and on until both outcomes were seen.
		for i := 0; i < raceIterations || (ok == 0 || refused == 0) && i < 100*raceIterations; i++ {
			f, fi, err := r.Open("f")
			if err != nil {
				if !errors.Is(err, ErrSymlink) {
					t.Fatalf("iteration %d: %v, want ErrSymlink", i, err)
				}
				refused++
				continue
			}
			b, err := io.ReadAll(f)
			f.Close()
			must(t, err)
			if string(b) != inside || !fi.Mode().IsRegular() {
				t.Fatalf("iteration %d: read %q (%v)", i, b, fi.Mode())
			}
			ok++
		}
		t.Logf("%d iterations: %d reads of the file, %d refused symlinks", ok+refused, ok, refused)
		if ok == 0 || refused == 0 {
			t.Fatalf("the race did not alternate (%d reads, %d refusals)", ok, refused)
		}
	})
}

// The same with a directory on the way swapped for a symlink to an outside
// directory holding a file of the same name, read by path and by a walk.
func TestRaceSwapDirForSymlink(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		stop := swaptest.Exchange(t, x.root, "d", filepath.Join(x.outside, "d"))
		defer stop()
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()
		var ok int
		for i := 0; i < raceIterations || ok == 0 && i < 100*raceIterations; i++ {
			if f, _, err := r.Open("d/f"); err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				if string(b) != inside {
					t.Fatalf("iteration %d: Open read %q", i, b)
				}
				ok++
			} else if !errors.Is(err, ErrSymlink) {
				t.Fatalf("iteration %d: %v, want ErrSymlink", i, err)
			}
			err := r.Walk(func(rel string, info fs.FileInfo, parent *Dir, err error) error {
				if err != nil || !info.Mode().IsRegular() {
					return nil
				}
				f, _, err := parent.Open(info.Name())
				if err != nil {
					return nil
				}
				defer f.Close()
				b, _ := io.ReadAll(f)
				if string(b) == secret {
					t.Fatalf("iteration %d: the walk read the secret at %s", i, rel)
				}
				return nil
			})
			must(t, err)
		}
		if ok == 0 {
			t.Fatal("never read the file: the race did not alternate")
		}
	})
}

func TestOpenChecksWhatItOpened(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		must(t, os.Symlink(x.secretFile, filepath.Join(x.root, "link")))
		must(t, os.Symlink(filepath.Join(x.outside, "d"), filepath.Join(x.root, "dlink")))
		must(t, os.Symlink("d", filepath.Join(x.root, "inner")))
		must(t, unix.Mkfifo(filepath.Join(x.root, "fifo"), 0o644))
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()
		for rel, want := range map[string]error{
			"link": ErrSymlink, "dlink/f": ErrSymlink, "inner/f": ErrSymlink,
			"d": ErrNotRegular, "fifo": ErrNotRegular, "missing": fs.ErrNotExist,
			"../x": ErrBadPath, "/etc/passwd": ErrBadPath, "d/../f": ErrBadPath, "": ErrBadPath,
		} {
			done := make(chan error, 1)
			go func() {
				f, _, err := r.Open(rel)
				if f != nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, want) {
					t.Errorf("Open(%q): %v, want %v", rel, err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Open(%q) blocked", rel)
			}
		}
		if _, err := r.OpenDir("dlink"); !errors.Is(err, ErrSymlink) {
			t.Errorf("OpenDir(dlink): %v", err)
		}
		f, fi, err := r.Open("d/f")
		must(t, err)
		f.Close()
		if fi.Name() != "f" || fi.Size() != int64(len(inside)) || !fi.Mode().IsRegular() || Ino(fi) == 0 {
			t.Errorf("stat: %s %d %v %d", fi.Name(), fi.Size(), fi.Mode(), Ino(fi))
		}
	})
}

func TestWritesDoNotFollowSymlinks(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		must(t, os.Symlink(x.secretFile, filepath.Join(x.root, "link")))
		must(t, os.Symlink(filepath.Join(x.outside, "d"), filepath.Join(x.root, "dlink")))
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()
		write := func(s string) func(*os.File) error {
			return func(f *os.File) error { _, err := f.WriteString(s); return err }
		}
		// Replacing a symlink replaces the link, not its target.
		must(t, r.ReplaceFile("link", 0o640, write("new")))
		if b, _ := os.ReadFile(x.secretFile); string(b) != secret {
			t.Fatalf("wrote through the symlink: %q", b)
		}
		fi, err := r.Lstat("link")
		must(t, err)
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
			t.Fatalf("link after ReplaceFile: %v", fi.Mode())
		}
		// Below a symlinked directory: refused.
		if err := r.ReplaceFile("dlink/f", 0o644, write("x")); !errors.Is(err, ErrSymlink) {
			t.Fatalf("ReplaceFile below a symlink: %v", err)
		}
		if err := r.MkdirAll("dlink/new/deeper", 0o755); !errors.Is(err, ErrSymlink) {
			t.Fatalf("MkdirAll below a symlink: %v", err)
		}
		if err := r.Symlink("/etc", "dlink/planted"); !errors.Is(err, ErrSymlink) {
			t.Fatalf("Symlink below a symlink: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(x.outside, "d", "new")); err == nil {
			t.Fatal("MkdirAll created a directory outside the root")
		}
		// RemoveAll of a symlinked directory removes the link only.
		must(t, r.RemoveAll("dlink"))
		if _, err := os.Stat(filepath.Join(x.outside, "d", "f")); err != nil {
			t.Fatalf("RemoveAll followed the symlink: %v", err)
		}
		// The ordinary cases.
		must(t, r.MkdirAll("a/b/c", 0o755))
		must(t, r.ReplaceFile("a/b/c/file", 0o600, write("hello")))
		must(t, r.Symlink("../file", "a/b/c/rel"))
		if tgt, err := r.Readlink("a/b/c/rel"); err != nil || tgt != "../file" {
			t.Fatalf("Readlink: %q %v", tgt, err)
		}
		var seen []string
		must(t, r.Walk(func(rel string, info fs.FileInfo, parent *Dir, err error) error {
			must(t, err)
			seen = append(seen, rel)
			return nil
		}))
		if got := strings.Join(seen, " "); got != "a a/b a/b/c a/b/c/file a/b/c/rel d d/f f link" {
			t.Fatalf("walk: %s", got)
		}
		must(t, r.Remove("f"))
		must(t, r.RemoveAll("a"))
		if err := r.Remove("d"); err == nil || !errors.Is(err, syscall.ENOTEMPTY) {
			t.Fatalf("Remove of a non-empty directory: %v", err)
		}
		infos, err := r.ReadDir()
		must(t, err)
		if len(infos) != 2 || infos[0].Name() != "d" || infos[1].Name() != "link" {
			t.Fatalf("left: %v", infos)
		}
	})
}
