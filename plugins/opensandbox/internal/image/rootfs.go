package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Guest paths the root file system must provide: the rootfs is mounted
// read-only, so the runtime cannot create mount points itself.
var mountPoints = []string{
	"proc", "dev", "sys", "run", "tmp", "workspace",
	"mcpruntime/lib", "mcpruntime/kernel", "mcpruntime/state",
}

// MountPoints are the paths (relative to /) a sandbox image must provide.
func MountPoints() []string { return append([]string(nil), mountPoints...) }

// SandboxUID is the unprivileged user the kernel runs as.
const SandboxUID = 1000

const passwd = `root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:sandbox:/workspace:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`

const group = `root:x:0:
sandbox:x:1000:
nogroup:x:65534:
`

// AssembleRootfs unpacks debs into dir and makes the result a usable,
// read-only-friendly Python root: merged /usr, users, mount points, a
// linker cache and precompiled bytecode.
func AssembleRootfs(ctx context.Context, dir string, debs []string, progress func(string, ...any)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("assemble rootfs: %w", err)
	}
	progress("extracting packages", "count", len(debs))
	if err := extractAll(ctx, dir, debs); err != nil {
		return err
	}
	if err := mergeUsr(dir); err != nil {
		return fmt.Errorf("assemble rootfs: merge /usr: %w", err)
	}
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian"} {
		os.RemoveAll(filepath.Join(dir, d))
	}
	files := map[string]string{
		"etc/passwd":      passwd,
		"etc/group":       group,
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
		"etc/hostname":    "sandbox\n",
		"etc/resolv.conf": "",
		"etc/ld.so.conf":  "include /etc/ld.so.conf.d/*.conf\n",
		"etc/shadow":      "root:*:19000:0:99999:7:::\nsandbox:*:19000:0:99999:7:::\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("assemble rootfs: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "etc/shadow"), 0o640); err != nil {
		return fmt.Errorf("assemble rootfs: %w", err)
	}
	for _, m := range mountPoints {
		if err := os.MkdirAll(filepath.Join(dir, m), 0o755); err != nil {
			return fmt.Errorf("assemble rootfs: mount point %s: %w", m, err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	links := map[string]string{"usr/bin/python3": "python3.11", "usr/bin/python": "python3.11", "usr/bin/sh": "dash"}
	for name, target := range links {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(target, p); err != nil {
				return fmt.Errorf("assemble rootfs: %w", err)
			}
		}
	}
	if err := alternativeLibDirs(dir); err != nil {
		return fmt.Errorf("assemble rootfs: %w", err)
	}
	progress("building the linker cache")
	if out, err := exec.CommandContext(ctx, "ldconfig", "-r", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("assemble rootfs: ldconfig: %w: %s", err, out)
	}
	progress("precompiling Python bytecode (the rootfs is read-only at run time)")
	// Some files in Debian's tree are deliberately not valid Python 3
	// (lib2to3 fixtures); compileall reports them and goes on, so its exit
	// status is not an error here. The interpreter running is checked below.
	// compileall -j needs POSIX semaphores (/dev/shm), absent in the bare
	// chroot, so the two trees are compiled by two processes instead.
	env := []string{"PATH=/usr/bin", "LANG=C.UTF-8"}
	var wg sync.WaitGroup
	outs := make([][]byte, 2)
	for i, tree := range []string{"/usr/lib/python3.11", "/usr/lib/python3/dist-packages"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, "chroot", dir, "/usr/bin/python3.11", "-m", "compileall", "-q", tree)
			cmd.Env = env
			outs[i], _ = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	// Import every top-level package of dist-packages: a missing shared
	// library shows here rather than in a user's session.
	check := exec.CommandContext(ctx, "chroot", dir, "/usr/bin/python3", "-c", importCheck)
	check.Env = env
	if cout, err := check.CombinedOutput(); err != nil {
		return fmt.Errorf("assemble rootfs: the assembled python does not run: %w: %s %s", err, cout, lastLines(string(outs[0])+string(outs[1]), 5))
	}
	return nil
}

const importCheck = `import json, ssl, sqlite3, pickle, resource, os, importlib
d = "/usr/lib/python3/dist-packages"
names = sorted({n.split(".")[0].split("-")[0] for n in os.listdir(d) if n.isidentifier() or n.endswith(".py")} - {"__pycache__"})
for n in names:
    n = n[:-3] if n.endswith(".py") else n
    if n.isidentifier() and not n.startswith("_"):
        importlib.import_module(n)
`

// alternativeLibDirs makes libraries that Debian exposes through
// update-alternatives (maintainer scripts, which are not run here) visible
// to the dynamic linker: e.g. libblas.so.3 lives in
// /usr/lib/x86_64-linux-gnu/blas/ and numpy needs it. Every subdirectory of
// a library directory holding a shared library the parent lacks is added
// to the linker's search path.
func alternativeLibDirs(root string) error {
	var dirs []string
	parents, _ := filepath.Glob(filepath.Join(root, "usr/lib/*-linux-gnu"))
	for _, parent := range parents {
		subs, err := os.ReadDir(parent)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if !sub.IsDir() {
				continue
			}
			libs, _ := filepath.Glob(filepath.Join(parent, sub.Name(), "lib*.so.*"))
			for _, lib := range libs {
				if _, err := os.Lstat(filepath.Join(parent, filepath.Base(lib))); errors.Is(err, fs.ErrNotExist) {
					dirs = append(dirs, strings.TrimPrefix(filepath.Join(parent, sub.Name()), root))
					break
				}
			}
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	conf := filepath.Join(root, "etc/ld.so.conf.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(conf, "zz-alternatives.conf"), []byte(strings.Join(dirs, "\n")+"\n"), 0o644)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// extractAll unpacks the packages two at a time (the machine is shared).
func extractAll(ctx context.Context, dir string, debs []string) error {
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, deb := range debs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, out))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mergeUsr moves /bin, /sbin, /lib and /lib64 below /usr and leaves
// symlinks, as a Debian 12 system has them.
func mergeUsr(root string) error {
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		top := filepath.Join(root, d)
		st, err := os.Lstat(top)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Join(root, "usr", d), 0o755); err != nil {
				return err
			}
			if err := os.Symlink("usr/"+d, top); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		if err := moveTree(top, filepath.Join(root, "usr", d)); err != nil {
			return err
		}
		if err := os.RemoveAll(top); err != nil {
			return err
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
		dst, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(s, d); err != nil {
				return err
			}
		case err != nil:
			return err
		case e.IsDir() && dst.IsDir():
			if err := moveTree(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}
