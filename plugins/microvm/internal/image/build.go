// Package image builds the guest image of the microVM backend from Debian
// packages: the kernel (uncompressed vmlinux for PVH direct boot), an
// initramfs holding the guest agent and the virtio modules, and a read-only
// ext4 root with Python and the sdk kernel, bytecode precompiled. Every
// artefact is cached under a content hash of the exact packages and inputs
// that went into it (sdk/rootfs), so a rebuild happens only when one
// changes.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// builderVersion changes when the build recipe changes in a way that must
// invalidate cached artefacts.
const builderVersion = "6"

// Options configure Ensure.
type Options struct {
	// Dir holds the cached artefacts and downloaded packages.
	Dir string
	// Agent is the static guest agent binary to pack as /init.
	Agent string
	// Logger receives progress messages (default: discarded).
	Logger hclog.Logger
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
// other per artefact. Without apt (not Debian, or no package lists), the
// last image built is used.
func Ensure(ctx context.Context, o Options) (*Image, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image dir: %w", err)
	}
	im, err := ensure(ctx, o)
	if err != nil {
		if last, lerr := loadCurrent(o.Dir); lerr == nil && last.Check() == nil && !errors.Is(err, errInput) {
			o.Logger.Warn("cannot resolve the image from apt; using the last built image", "error", err, "key", last.Key)
			return last, nil
		}
		return nil, err
	}
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("record current image: %w", err)
	}
	if err := writeAtomic(filepath.Join(o.Dir, "current.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("record current image: %w", err)
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
	idx, err := rootfs.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	kp, err := kernelPackage(idx)
	if err != nil {
		return nil, err
	}
	kdir, err := rootfs.Cached(ctx, o.Dir, "kernel-"+kp.Name+"_"+strings.ReplaceAll(kp.Version, ":", "_"), func(ctx context.Context, out string) error {
		return buildKernel(ctx, o, kp, out)
	})
	if err != nil {
		return nil, err
	}
	release, err := os.ReadFile(filepath.Join(kdir, "release"))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kp, err)
	}
	pkgs, err := idx.Resolve(pythonRoots, rootfs.Exclude(excluded...))
	if err != nil {
		return nil, fmt.Errorf("python root: %w", err)
	}
	rootKey := rootfs.Key(pkgs, "microvm-rootfs", builderVersion, string(kernel.Source()))
	root, err := rootfs.Cached(ctx, o.Dir, "rootfs-"+rootKey+".ext4", func(ctx context.Context, out string) error {
		return buildRootfs(ctx, o, pkgs, rootKey, out)
	})
	if err != nil {
		return nil, err
	}
	initKey := rootfs.Key(nil, "initramfs", builderVersion, filepath.Base(kdir), string(agent))
	initrd, err := rootfs.Cached(ctx, o.Dir, "initramfs-"+initKey+".cpio", func(_ context.Context, out string) error {
		o.Logger.Info("packing initramfs (agent + modules)")
		return buildInitramfs(kdir, agent, out)
	})
	if err != nil {
		return nil, err
	}
	return &Image{
		Kernel: filepath.Join(kdir, "vmlinux"), Initramfs: initrd, Rootfs: root,
		Release: strings.TrimSpace(string(release)),
		Key:     rootfs.Key(nil, "image", filepath.Base(kdir), rootKey, initKey),
	}, nil
}
