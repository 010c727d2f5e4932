package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// baseDirs exist in every root: kernel file systems, scratch and homes.
var baseDirs = []string{"dev", "proc", "sys", "run", "tmp", "root", "etc"}

// pruned holds documentation nothing reads at run time.
var pruned = []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian"}

// Assemble unpacks debs into dir and shapes the result like a small
// Debian system that can be mounted read-only: merged /usr, no
// documentation, users and host files in /etc, the base directories, a
// world-writable /tmp and a dynamic linker cache that also covers
// libraries Debian would expose through update-alternatives. Options:
// WithLogger, WithUser, WithDirs, WithSymlink, WithHostname.
func Assemble(ctx context.Context, dir string, debs []string, opts ...Option) error {
	c := newConfig(opts)
	c.log.Info("extracting packages", "count", len(debs))
	if err := Extract(ctx, dir, debs...); err != nil {
		return fmt.Errorf("assemble %s: %w", dir, err)
	}
	if err := mergeUsr(dir); err != nil {
		return fmt.Errorf("assemble %s: merge /usr: %w", dir, err)
	}
	for _, d := range pruned {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("assemble %s: %w", dir, err)
		}
	}
	for _, d := range append(append([]string(nil), baseDirs...), c.dirs...) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("assemble %s: directory %s: %w", dir, d, err)
		}
	}
	// Chmod, not MkdirAll's mode: the umask would take the sticky bit's
	// companions away.
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return fmt.Errorf("assemble %s: %w", dir, err)
	}
	if err := writeEtc(dir, c); err != nil {
		return fmt.Errorf("assemble %s: %w", dir, err)
	}
	for _, l := range c.symlinks {
		p := filepath.Join(dir, l[0])
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Symlink(l[1], p); err != nil {
			return fmt.Errorf("assemble %s: %w", dir, err)
		}
	}
	c.log.Info("building the dynamic linker cache")
	if err := linkerCache(ctx, dir); err != nil {
		return fmt.Errorf("assemble %s: %w", dir, err)
	}
	return nil
}

// writeEtc writes the files a Debian system gets from base-files,
// base-passwd and netbase's maintainer scripts, which never run here.
func writeEtc(root string, c *config) error {
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	group := "root:x:0:\n"
	shadow := "root:*:19000:0:99999:7:::\n"
	for _, u := range c.users {
		passwd += fmt.Sprintf("%s:x:%d:%d:%s:%s:/bin/sh\n", u.name, u.id, u.id, u.name, u.home)
		group += fmt.Sprintf("%s:x:%d:\n", u.name, u.id)
		shadow += u.name + ":*:19000:0:99999:7:::\n"
	}
	passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group += "nogroup:x:65534:\n"
	files := []struct {
		name, content string
		mode          fs.FileMode
	}{
		{"etc/passwd", passwd, 0o644},
		{"etc/group", group, 0o644},
		{"etc/shadow", shadow, 0o640},
		{"etc/hostname", c.hostname + "\n", 0o644},
		{"etc/hosts", "127.0.0.1\tlocalhost " + c.hostname + "\n::1\tlocalhost\n", 0o644},
		// Empty, so a runtime can bind its own over it on a read-only root.
		{"etc/resolv.conf", "", 0o644},
	}
	for _, f := range files {
		p := filepath.Join(root, f.name)
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode and applies the umask.
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// mergeUsr moves /bin, /sbin, /lib and /lib64 below /usr and leaves
// symlinks, as a Debian 12 system has them.
func mergeUsr(root string) error {
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		top := filepath.Join(root, d)
		st, err := os.Lstat(top)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(filepath.Join(root, "usr", d), 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			continue
		default:
			if err := moveTree(top, filepath.Join(root, "usr", d)); err != nil {
				return err
			}
			if err := os.RemoveAll(top); err != nil {
				return err
			}
		}
		if err := os.Symlink("usr/"+d, top); err != nil {
			return err
		}
	}
	return nil
}

// moveTree moves the entries of src into dst, merging directories; on a
// clash the entry already in dst wins.
func moveTree(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		st, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(s, d); err != nil {
				return err
			}
		case err != nil:
			return err
		case e.IsDir() && st.IsDir():
			if err := moveTree(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// linkerCache runs ldconfig on the root. Libraries Debian exposes through
// update-alternatives (maintainer scripts, which do not run) live in a
// subdirectory of a library directory, e.g. libblas.so.3 in
// /usr/lib/x86_64-linux-gnu/blas/, which numpy needs: every subdirectory
// holding a shared library its parent lacks joins the search path.
func linkerCache(ctx context.Context, root string) error {
	var dirs []string
	parents, err := filepath.Glob(filepath.Join(root, "usr/lib/*-linux-gnu"))
	if err != nil {
		return err
	}
	for _, parent := range parents {
		subs, err := os.ReadDir(parent)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if !sub.IsDir() {
				continue
			}
			libs, err := filepath.Glob(filepath.Join(parent, sub.Name(), "lib*.so.*"))
			if err != nil {
				return err
			}
			for _, lib := range libs {
				if _, err := os.Lstat(filepath.Join(parent, filepath.Base(lib))); errors.Is(err, fs.ErrNotExist) {
					dirs = append(dirs, strings.TrimPrefix(filepath.Join(parent, sub.Name()), root))
					break
				}
			}
		}
	}
	conf := filepath.Join(root, "etc/ld.so.conf.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	if len(dirs) > 0 {
		if err := os.WriteFile(filepath.Join(conf, "zz-alternatives.conf"), []byte(strings.Join(dirs, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/ld.so.conf")); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("include /etc/ld.so.conf.d/*.conf\n"), 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", "ldconfig", "-r", root); err != nil {
		return fmt.Errorf("linker cache: %w", err)
	}
	return nil
}
