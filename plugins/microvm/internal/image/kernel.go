package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pierrec/lz4/v4"

	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// kernelMeta is the Debian metapackage that points at the current cloud
// kernel (virtio drivers as modules, ext4 built in, small).
const kernelMeta = "linux-image-cloud-amd64"

// guestModules are loaded by the agent; dependencies are added.
var guestModules = []string{"virtio_mmio", "virtio_pci", "virtio_console", "virtio_blk", "vmw_vsock_virtio_transport"}

// kernelPackage is the versioned kernel package the metapackage names.
func kernelPackage(idx *rootfs.Index) (rootfs.Package, error) {
	meta, ok := idx.Package(kernelMeta)
	if !ok {
		return rootfs.Package{}, fmt.Errorf("find the cloud kernel: no package %s", kernelMeta)
	}
	for _, d := range meta.Dependencies() {
		if strings.HasPrefix(d, "linux-image-") {
			p, ok := idx.Package(d)
			if !ok {
				return rootfs.Package{}, fmt.Errorf("find the cloud kernel: %s names %s, which has no candidate", kernelMeta, d)
			}
			return p, nil
		}
	}
	return rootfs.Package{}, fmt.Errorf("find the cloud kernel: %s names no kernel package", kernelMeta)
}

// buildKernel unpacks the kernel package into out: vmlinux, the guest
// modules, their load order and the release.
func buildKernel(ctx context.Context, o Options, kp rootfs.Package, out string) error {
	o.Logger.Info("kernel", "package", kp.String())
	debs, err := rootfs.Fetch(ctx, filepath.Join(o.Dir, "debs"), []rootfs.Package{kp}, rootfs.WithLogger(o.Logger))
	if err != nil {
		return err
	}
	x := filepath.Join(filepath.Dir(out), "x")
	if err := rootfs.Extract(ctx, x, debs...); err != nil {
		return err
	}
	rels, err := filepath.Glob(filepath.Join(x, "lib/modules/*"))
	if err != nil || len(rels) != 1 {
		return fmt.Errorf("kernel package %s: expected one module tree, found %d (%v)", kp, len(rels), err)
	}
	release := filepath.Base(rels[0])
	if err := os.MkdirAll(filepath.Join(out, "modules"), 0o755); err != nil {
		return err
	}
	o.Logger.Info("kernel: extracting vmlinux from the LZ4 bzImage")
	if err := extractVmlinux(filepath.Join(x, "boot", "vmlinuz-"+release), filepath.Join(out, "vmlinux")); err != nil {
		return err
	}
	order, paths, err := moduleOrder(rels[0], guestModules)
	if err != nil {
		return err
	}
	for _, m := range order {
		b, err := os.ReadFile(paths[m])
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "modules", m+".ko"), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, "modules", "order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "release"), []byte(release+"\n"), 0o644)
}

// lz4Legacy is the magic of the LZ4 "legacy" frame Linux uses for
// compressed kernels.
var lz4Legacy = []byte{0x02, 0x21, 0x4c, 0x18}

// extractVmlinux finds the LZ4 payload in a bzImage and decompresses it to
// the ELF vmlinux, which carries the PVH entry note QEMU's microvm and
// Cloud Hypervisor direct-boot.
func extractVmlinux(bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	i := bytes.Index(b, lz4Legacy)
	if i < 0 {
		return fmt.Errorf("%s: no LZ4 payload found (only LZ4-compressed kernels are supported)", bzImage)
	}
	var buf bytes.Buffer
	// The payload is followed by the decompressed size and padding, which
	// the legacy reader reports as a bad block: what matters is a whole ELF.
	_, _ = io.Copy(&buf, lz4.NewReader(bytes.NewReader(b[i:])))
	if err := checkPVH(buf.Bytes()); err != nil {
		return fmt.Errorf("%s: decompressed kernel: %w", bzImage, err)
	}
	return writeAtomic(out, buf.Bytes(), 0o644)
}

// checkPVH verifies an ELF kernel with the Xen PVH entry note (type 18).
func checkPVH(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF image: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		for len(data) >= 12 {
			nsz := binary.LittleEndian.Uint32(data)
			dsz := binary.LittleEndian.Uint32(data[4:])
			typ := binary.LittleEndian.Uint32(data[8:])
			name := data[12:min(len(data), 12+int(nsz))]
			if typ == 18 && strings.HasPrefix(string(name), "Xen") {
				return nil
			}
			adv := 12 + align4(int(nsz)) + align4(int(dsz))
			if adv > len(data) {
				break
			}
			data = data[adv:]
		}
	}
	return errors.New("no PVH entry note: the kernel cannot be direct-booted")
}

func align4(n int) int { return (n + 3) &^ 3 }

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("module %s: no .modinfo", path)
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := strings.CutPrefix(string(kv), "depends="); ok {
			if v == "" {
				return nil, nil
			}
			return strings.Split(v, ","), nil
		}
	}
	return nil, nil
}

// moduleOrder finds the wanted modules under modRoot and orders them so
// every module follows its dependencies (which are added when missing).
func moduleOrder(modRoot string, want []string) (order []string, paths map[string]string, err error) {
	index := map[string]string{}
	err = filepath.WalkDir(modRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok {
			index[strings.ReplaceAll(name, "-", "_")] = p
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("index modules: %w", err)
	}
	paths = map[string]string{}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		name = strings.ReplaceAll(name, "-", "_")
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		p, ok := index[name]
		if !ok {
			return fmt.Errorf("module %s not found in the kernel package (compressed modules are not supported)", name)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		paths[name] = p
		return nil
	}
	for _, w := range want {
		if err := visit(w); err != nil {
			return nil, nil, err
		}
	}
	return order, paths, nil
}

// writeAtomic replaces path with data; a crash leaves the old file or the
// new one, and concurrent writers never share a temporary file.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
