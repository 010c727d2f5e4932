//go:build linux

package nofollow

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OpenFile with write flags never writes, appends or creates through a
// symlink, refuses what is neither a file nor a directory without blocking
// on it, and otherwise behaves like os.OpenFile.
func TestOpenFile(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		must(t, os.Symlink(x.secretFile, filepath.Join(x.root, "link")))
		must(t, os.Symlink(filepath.Join(x.outside, "new"), filepath.Join(x.root, "dangling")))
		must(t, os.Symlink(filepath.Join(x.outside, "d"), filepath.Join(x.root, "dlink")))
		must(t, unix.Mkfifo(filepath.Join(x.root, "fifo"), 0o644))
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()

		for _, c := range []struct {
			rel  string
			flag int
		}{
			{"link", os.O_WRONLY | os.O_APPEND | os.O_CREATE},
			{"link", os.O_RDWR | os.O_TRUNC},
			{"link", os.O_RDONLY},
			{"dangling", os.O_WRONLY | os.O_CREATE},
			{"dlink/f", os.O_WRONLY | os.O_APPEND},
			{"dlink/g", os.O_WRONLY | os.O_CREATE | os.O_EXCL},
			{"dlink", os.O_RDONLY | unix.O_DIRECTORY},
		} {
			if f, _, err := r.OpenFile(c.rel, c.flag, 0o644); !errors.Is(err, ErrSymlink) {
				if f != nil {
					f.Close()
				}
				t.Fatalf("OpenFile(%s, %#x): %v, want ErrSymlink", c.rel, c.flag, err)
			}
		}
		if b, _ := os.ReadFile(x.secretFile); string(b) != secret {
			t.Fatalf("the symlink's target changed: %q", b)
		}
		for _, p := range []string{filepath.Join(x.outside, "new"), filepath.Join(x.outside, "d", "g")} {
			if _, err := os.Lstat(p); err == nil {
				t.Fatalf("created through a symlink: %s", p)
			}
		}

		done := make(chan error, 1)
		go func() {
			f, _, err := r.OpenFile("fifo", os.O_RDONLY, 0)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Fatalf("OpenFile of a fifo: %v, want ErrNotRegular", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OpenFile blocked on a fifo")
		}

		// The ordinary cases: create, append, a directory.
		f, fi, err := r.OpenFile("d/log", os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		must(t, err)
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("created %v", fi.Mode())
		}
		if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Fatalf("left non-blocking: %#x %v", fl, err)
		}
		_, err = f.WriteString("one\n")
		must(t, err)
		must(t, f.Close())
		f, _, err = r.OpenFile("d/log", os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString("two\n")
		must(t, err)
		must(t, f.Close())
		if b, _ := os.ReadFile(filepath.Join(x.root, "d", "log")); string(b) != "one\ntwo\n" {
			t.Fatalf("appended: %q", b)
		}
		f, fi, err = r.OpenFile("d", os.O_RDONLY|unix.O_DIRECTORY, 0)
		must(t, err)
		if !fi.IsDir() {
			t.Fatalf("directory opened as %v", fi.Mode())
		}
		names, err := f.Readdirnames(-1)
		must(t, err)
		must(t, f.Close())
		if len(names) != 2 {
			t.Fatalf("listed %v", names)
		}
		if _, _, err := r.OpenFile("d", os.O_WRONLY, 0); !errors.Is(err, unix.EISDIR) {
			t.Fatalf("write access to a directory: %v", err)
		}
		if _, _, err := r.OpenFile("f", os.O_RDONLY|unix.O_DIRECTORY, 0); !errors.Is(err, unix.ENOTDIR) {
			t.Fatalf("O_DIRECTORY on a file: %v", err)
		}
	})
}

// At hands fn the parent reached without symlinks, and fn's errors back as
// they are.
func TestAt(t *testing.T) {
	modes(t, func(t *testing.T) {
		x := newFixture(t)
		must(t, os.Symlink(filepath.Join(x.outside, "d"), filepath.Join(x.root, "dlink")))
		r, err := OpenRoot(x.root)
		must(t, err)
		defer r.Close()
		unlink := func(dirfd int, name string) error { return unix.Unlinkat(dirfd, name, 0) }
		if err := r.At("unlink", "dlink/f", unlink); !errors.Is(err, ErrSymlink) {
			t.Fatalf("At below a symlink: %v", err)
		}
		if _, err := os.Stat(filepath.Join(x.outside, "d", "f")); err != nil {
			t.Fatalf("removed outside the root: %v", err)
		}
		must(t, r.At("unlink", "d/f", unlink))
		if _, err := os.Lstat(filepath.Join(x.root, "d", "f")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("d/f not removed: %v", err)
		}
		err = r.At("rename", "f", func(int, string) error { return unix.EXDEV })
		if !errors.Is(err, unix.EXDEV) || errors.Is(err, ErrSymlink) {
			t.Fatalf("fn's EXDEV came back as %v", err)
		}
		if err := r.At("x", ".", unlink); !errors.Is(err, ErrBadPath) {
			t.Fatalf("At(.): %v", err)
		}
	})
}
