// Package image builds the guest image of the microVM backend from Debian
// packages: the kernel (uncompressed vmlinux for PVH direct boot), an
// initramfs holding the guest agent and the virtio modules, and a read-only
// ext4 root with Python and the sdk kernel, bytecode precompiled. Every
// artefact is cached under a key made of the exact package versions and
// inputs that went into it, so a rebuild happens only when one changes.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// builderVersion changes when the build recipe changes in a way that must
// invalidate cached artefacts.
const builderVersion = "3"

// kernelMeta is the Debian metapackage that points at the current cloud
// kernel (virtio drivers as modules, ext4 built in, small).
const kernelMeta = "linux-image-cloud-amd64"

// guestModules are loaded by the agent; dependencies are added.
var guestModules = []string{"virtio_mmio", "virtio_pci", "virtio_console", "virtio_blk", "vmw_vsock_virtio_transport"}

// pythonRoots are the packages the root file system is made of (with
// their dependencies, minus the package manager's own tools).
var pythonRoots = []string{"python3-minimal", "libpython3-stdlib"}

func skipPackage(name string) bool {
	switch name {
	case "dpkg", "install-info", "mailcap", "mime-support", "tar", "debconf", "readline-common":
		return true
	}
	return strings.HasPrefix(name, "perl") || strings.HasPrefix(name, "libperl") || strings.HasPrefix(name, "debconf")
}

// Options configure Ensure.
type Options struct {
	// Dir holds the cached artefacts and downloaded packages.
	Dir string
	// Agent is the static guest agent binary to pack as /init.
	Agent string
	// Progress receives human-readable progress lines.
	Progress func(format string, a ...any)
}

// Image is a built guest image.
type Image struct {
	Kernel    string `json:"kernel"`
	Initramfs string `json:"initramfs"`
	Rootfs    string `json:"rootfs"`
	// Release is the guest kernel's release (uname -r inside the VM).
	Release string `json:"release"`
	// Key identifies the combination (snapshots record it).
	Key string `json:"key"`
}

// Check reports whether every artefact exists.
func (im *Image) Check() error {
	for _, p := range []string{im.Kernel, im.Initramfs, im.Rootfs} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("guest image incomplete: %w (rebuild with `mcpruntime-plugin-microvm image`)", err)
		}
	}
	return nil
}

// Ensure returns the image for the packages apt offers now, building what
// is missing. Concurrent callers (two plugin processes) wait for each
// other. Without apt (not Debian, or no package lists), the last image
// built is used.
func Ensure(ctx context.Context, o Options) (*Image, error) {
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image dir: %w", err)
	}
	unlock, err := lockDir(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	im, err := ensure(ctx, o)
	if err != nil {
		if last, lerr := loadCurrent(o.Dir); lerr == nil && last.Check() == nil && !errors.Is(err, errInput) {
			o.Progress("cannot resolve the image from apt (%v); using the last built image %s", err, last.Key)
			return last, nil
		}
		return nil, err
	}
	b, _ := json.MarshalIndent(im, "", "  ")
	if err := writeAtomic(filepath.Join(o.Dir, "current.json"), b, 0o644); err != nil {
		return nil, err
	}
	return im, nil
}

// errInput marks failures that a cached image cannot paper over.
var errInput = errors.New("bad input")

func loadCurrent(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, "current.json"))
	if err != nil {
		return nil, err
	}
	im := &Image{}
	if err := json.Unmarshal(b, im); err != nil {
		return nil, err
	}
	return im, nil
}

func ensure(ctx context.Context, o Options) (*Image, error) {
	agent, err := os.ReadFile(o.Agent)
	if err != nil {
		return nil, fmt.Errorf("%w: guest agent binary: %v", errInput, err)
	}
	kpkgs, err := kernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	kdir, release, err := buildKernel(ctx, o, kpkgs)
	if err != nil {
		return nil, err
	}
	names, err := closure(ctx, pythonRoots, skipPackage)
	if err != nil {
		return nil, err
	}
	pypkgs, err := candidates(ctx, names)
	if err != nil {
		return nil, err
	}
	rootKey := hashOf("rootfs", builderVersion, fmt.Sprint(pypkgs), string(kernel.Source()))
	rootfs := filepath.Join(o.Dir, "rootfs-"+rootKey+".ext4")
	if _, err := os.Stat(rootfs); err != nil {
		if err := buildRootfs(ctx, o, pypkgs, rootKey, rootfs); err != nil {
			return nil, err
		}
	}
	initKey := hashOf("initramfs", builderVersion, filepath.Base(kdir), string(agent))
	initrd := filepath.Join(o.Dir, "initramfs-"+initKey+".cpio")
	if _, err := os.Stat(initrd); err != nil {
		o.Progress("packing initramfs (agent + modules)")
		if err := buildInitramfs(kdir, agent, initrd); err != nil {
			return nil, err
		}
	}
	return &Image{
		Kernel: filepath.Join(kdir, "vmlinux"), Initramfs: initrd, Rootfs: rootfs, Release: release,
		Key: hashOf("image", filepath.Base(kdir), rootKey, initKey),
	}, nil
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func kernelPackage(ctx context.Context) (pkg, error) {
	out, err := run(ctx, "", "apt-cache", "depends", kernelMeta)
	if err != nil {
		return pkg{}, fmt.Errorf("find the cloud kernel package: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(v, "linux-image-") {
			p, err := candidates(ctx, []string{v})
			if err != nil || len(p) == 0 {
				return pkg{}, fmt.Errorf("version of %s: %v", v, err)
			}
			return p[0], nil
		}
	}
	return pkg{}, fmt.Errorf("%s names no kernel package", kernelMeta)
}

// buildKernel unpacks the kernel package into a directory named after its
// exact version: vmlinux, the guest modules and their load order.
func buildKernel(ctx context.Context, o Options, kp pkg) (dir, release string, err error) {
	dir = filepath.Join(o.Dir, "kernel-"+kp.Name+"_"+strings.ReplaceAll(kp.Version, ":", "_"))
	if b, err := os.ReadFile(filepath.Join(dir, "release")); err == nil {
		return dir, strings.TrimSpace(string(b)), nil
	}
	o.Progress("kernel: %s", kp)
	debs, err := download(ctx, filepath.Join(o.Dir, "debs"), []pkg{kp}, o.Progress)
	if err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp(o.Dir, ".kernel-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	x := filepath.Join(tmp, "x")
	if err := unpack(ctx, debs[0], x); err != nil {
		return "", "", err
	}
	rels, _ := filepath.Glob(filepath.Join(x, "lib/modules/*"))
	if len(rels) != 1 {
		return "", "", fmt.Errorf("kernel package %s: expected one module tree, found %d", kp, len(rels))
	}
	release = filepath.Base(rels[0])
	out := filepath.Join(tmp, "out")
	if err := os.MkdirAll(filepath.Join(out, "modules"), 0o755); err != nil {
		return "", "", err
	}
	o.Progress("kernel: extracting vmlinux from the LZ4 bzImage")
	if err := extractVmlinux(filepath.Join(x, "boot", "vmlinuz-"+release), filepath.Join(out, "vmlinux")); err != nil {
		return "", "", err
	}
	order, paths, err := moduleOrder(rels[0], guestModules)
	if err != nil {
		return "", "", err
	}
	for _, m := range order {
		b, err := os.ReadFile(paths[m])
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(out, "modules", m+".ko"), b, 0o644); err != nil {
			return "", "", err
		}
	}
	if err := os.WriteFile(filepath.Join(out, "modules", "order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(out, "release"), []byte(release+"\n"), 0o644); err != nil {
		return "", "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(out, dir); err != nil {
		return "", "", err
	}
	return dir, release, nil
}

// buildInitramfs packs /init (the agent), /dev/console and the modules.
func buildInitramfs(kdir string, agent []byte, out string) error {
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	for _, d := range []string{"dev", "proc", "sys", "newroot", "lib", "lib/modules"} {
		c.Dir(d)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, agent)
	order, err := os.ReadFile(filepath.Join(kdir, "modules", "order"))
	if err != nil {
		return err
	}
	c.File("lib/modules/order", 0o644, order)
	for _, m := range strings.Fields(string(order)) {
		b, err := os.ReadFile(filepath.Join(kdir, "modules", m+".ko"))
		if err != nil {
			return err
		}
		c.File("lib/modules/"+m+".ko", 0o644, b)
	}
	if err := c.Close(); err != nil {
		return err
	}
	return writeAtomic(out, buf.Bytes(), 0o644)
}

// buildRootfs unpacks the Python packages, adds the sdk kernel and the
// mount points, precompiles bytecode in a chroot and makes the ext4 image.
func buildRootfs(ctx context.Context, o Options, pkgs []pkg, key, out string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: building the Python root needs root (chroot for bytecode compilation); run `make image` as root once", errInput)
	}
	start := time.Now()
	o.Progress("python root: %d packages", len(pkgs))
	debs, err := download(ctx, filepath.Join(o.Dir, "debs"), pkgs, o.Progress)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(o.Dir, ".rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	for _, d := range debs {
		if err := unpack(ctx, d, root); err != nil {
			return err
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "root", "etc", "workspace", "mcpruntime/lib", "usr/lib/mcpruntime", "newroot"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	_ = os.Chmod(filepath.Join(root, "tmp"), 0o1777|fs.ModeSticky)
	etc := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/hostname": "sandbox\n",
		"etc/hosts":    "127.0.0.1 localhost sandbox\n",
	}
	for p, s := range etc {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			return err
		}
	}
	if _, err := kernel.Install(filepath.Join(root, "usr/lib/mcpruntime")); err != nil {
		return err
	}
	o.Progress("python root: precompiling bytecode")
	py, _ := filepath.Glob(filepath.Join(root, "usr/lib/python3.*"))
	args := []string{root, "/usr/bin/python3", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", "/usr/lib/mcpruntime"}
	for _, p := range py {
		args = append(args, strings.TrimPrefix(p, root))
	}
	if _, err := run(ctx, "", "chroot", args...); err != nil {
		return fmt.Errorf("precompile bytecode: %w", err)
	}
	size, err := treeSize(root)
	if err != nil {
		return err
	}
	mib := size*5/4/(1<<20) + 32
	o.Progress("python root: ext4 image (%d MiB)", mib)
	uuid := key[:8] + "-" + key[8:12] + "-4" + key[13:16] + "-8000-000000000000"
	tmpImg := filepath.Join(tmp, "rootfs.ext4")
	cmd := []string{"-q", "-t", "ext4", "-O", "^has_journal", "-L", "mcpruntime-py", "-U", uuid,
		"-E", "hash_seed=" + uuid + ",root_owner=0:0", "-b", "4096", "-d", root, tmpImg, fmt.Sprintf("%dM", mib)}
	if err := os.Setenv("E2FSPROGS_FAKE_TIME", "1700000000"); err == nil {
		defer os.Unsetenv("E2FSPROGS_FAKE_TIME")
	}
	if _, err := run(ctx, "", "mke2fs", cmd...); err != nil {
		return fmt.Errorf("make ext4 root (is e2fsprogs installed?): %w", err)
	}
	if err := os.Rename(tmpImg, out); err != nil {
		return err
	}
	o.Progress("python root: done in %s", time.Since(start).Round(time.Second))
	return nil
}

func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size() + 4096
		}
		return nil
	})
	return n, err
}

// lockDir takes an exclusive lock on the image directory.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("image lock: %w", err)
	}
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another image build: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
