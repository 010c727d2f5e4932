package image

import (
	"bytes"
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
)

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

func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
