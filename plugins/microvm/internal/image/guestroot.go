package image

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// pythonRoots are the packages the root file system is made of, with
// their dependencies. matplotlib is there for the kernel's rich outputs
// (plots rendered with the Agg backend, no display).
var pythonRoots = []string{"python3-minimal", "libpython3-stdlib", "python3-matplotlib"}

// excluded are packages only a package manager needs: no maintainer
// script runs in the guest, so what depends on them is content without.
var excluded = []string{"dpkg", "install-info", "tar", "debconf*", "readline-common", "perl*", "libperl*",
	// What matplotlib's dependencies pull in that plotting with Agg never
	// imports: fonttools' optional back ends (scipy brings pythran, gcc,
	// g++ and boost headers: ~1.2 GiB), Tk for ImageTk, and the web
	// back end's JavaScript.
	"python3-scipy", "python3-sympy", "python3-pythran", "python3-lxml", "python3-fs", "unicode-data",
	"python3-pil.imagetk", "python3-tk", "libjs-*"}

// guestDirs are mount points and the kernel's home the read-only root
// must already have.
var guestDirs = []string{"workspace", "mcpruntime/lib", "usr/lib/mcpruntime", "newroot"}

// buildRootfs assembles the Python packages, adds the sdk kernel,
// precompiles bytecode in a chroot and writes the ext4 image to out.
func buildRootfs(ctx context.Context, o Options, pkgs []rootfs.Package, key, out string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: building the Python root needs root (chroot for bytecode compilation); run `make image` as root once", errInput)
	}
	start := time.Now()
	o.Logger.Info("python root", "packages", len(pkgs))
	debs, err := rootfs.Fetch(ctx, filepath.Join(o.Dir, "debs"), pkgs, rootfs.WithLogger(o.Logger))
	if err != nil {
		return err
	}
	root := filepath.Join(filepath.Dir(out), "root")
	if err := rootfs.Assemble(ctx, root, debs, rootfs.WithLogger(o.Logger), rootfs.WithDirs(guestDirs...)); err != nil {
		return err
	}
	if _, err := kernel.Install(filepath.Join(root, "usr/lib/mcpruntime")); err != nil {
		return fmt.Errorf("install the sdk kernel: %w", err)
	}
	o.Logger.Info("python root: precompiling bytecode")
	py, err := filepath.Glob(filepath.Join(root, "usr/lib/python3.*"))
	if err != nil {
		return err
	}
	trees := []string{"/usr/lib/mcpruntime"}
	// Debian's python3-* packages live in /usr/lib/python3/dist-packages;
	// without their bytecode every import compiles them again (the root is
	// read-only, so nothing is cached), which under TCG takes seconds.
	if _, err := os.Stat(filepath.Join(root, "usr/lib/python3")); err == nil {
		trees = append(trees, "/usr/lib/python3")
	}
	for _, p := range py {
		trees = append(trees, strings.TrimPrefix(p, root))
	}
	if err := rootfs.CompileBytecode(ctx, root, trees...); err != nil {
		return err
	}
	if err := rootfs.MatplotlibFontCache(ctx, root); err != nil {
		return err
	}
	if err := makeExt4(ctx, root, key, out, o); err != nil {
		return err
	}
	o.Logger.Info("python root: done", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// makeExt4 writes root as a journal-less ext4 image whose UUID, hash seed
// and timestamps derive from key, so equal inputs give equal images.
func makeExt4(ctx context.Context, root, key, out string, o Options) error {
	size, err := treeSize(root)
	if err != nil {
		return fmt.Errorf("size the python root: %w", err)
	}
	mib := size*5/4/(1<<20) + 32
	o.Logger.Info("python root: ext4 image", "MiB", mib)
	uuid := key[:8] + "-" + key[8:12] + "-4" + key[13:16] + "-8000-000000000000"
	cmd := exec.CommandContext(ctx, "mke2fs", "-q", "-t", "ext4", "-O", "^has_journal", "-L", "mcpruntime-py", "-U", uuid,
		"-E", "hash_seed="+uuid+",root_owner=0:0", "-b", "4096", "-d", root, out, fmt.Sprintf("%dM", mib))
	cmd.Env = append(os.Environ(), "LC_ALL=C", "E2FSPROGS_FAKE_TIME=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make ext4 root (is e2fsprogs installed?): %w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size() + 4096
		return nil
	})
	return n, err
}
