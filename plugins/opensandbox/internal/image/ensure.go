package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/image-spec/identity"

	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// Image labels that make builds idempotent.
const (
	LabelRecipe   = "mcpruntime.opensandbox/recipe"
	LabelVersions = "mcpruntime.opensandbox/versions"
)

// Options say which image to provide and how.
type Options struct {
	// Name of the image in containerd.
	Name string
	// Packages are Debian packages added to the base interpreter.
	Packages []string
	// WorkDir holds the package cache and build scratch space.
	WorkDir string
	// Snapshotter unpacks the image (default overlayfs).
	Snapshotter string
	// Rebuild re-resolves package versions even when an image built from
	// the same recipe exists, and rebuilds if any version changed.
	Rebuild bool
	// NoBuild refuses to build: a missing image is an error.
	NoBuild bool
	Logger  hclog.Logger
}

// Ready is a usable, unpacked image.
type Ready struct {
	Image   client.Image
	ChainID string
	Built   bool
}

// Ensure returns the configured image, building and importing it first if
// it is missing, was built from a different recipe, or (with Rebuild) if a
// package version changed. ctx must carry the containerd namespace.
func Ensure(ctx context.Context, c *client.Client, o Options) (*Ready, error) {
	if o.Snapshotter == "" {
		o.Snapshotter = "overlayfs"
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	requested := append(append([]string(nil), BasePackages...), o.Packages...)
	recipe := RecipeKey(requested)
	existing, err := c.GetImage(ctx, o.Name)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %s: %w", o.Name, err)
	}
	if existing != nil && existing.Labels()[LabelRecipe] == recipe && !o.Rebuild {
		return unpacked(ctx, existing, o.Snapshotter, false)
	}
	if o.NoBuild {
		if existing != nil {
			return nil, fmt.Errorf("image %s was built from another package list (recipe %s, want %s); rebuild it with `make -C plugins/opensandbox image`", o.Name, existing.Labels()[LabelRecipe], recipe)
		}
		return nil, fmt.Errorf("image %s not found in containerd; build it with `make -C plugins/opensandbox image` (or allow building on first use)", o.Name)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("image work dir: %w", err)
	}
	start := time.Now()
	o.Logger.Info("resolving Debian packages for the sandbox image", "image", o.Name, "packages", requested)
	idx, err := rootfs.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	pkgs, err := idx.Resolve(requested)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Name, err)
	}
	versions := VersionsKey(pkgs)
	if existing != nil && existing.Labels()[LabelVersions] == versions {
		o.Logger.Info("sandbox image is up to date", "image", o.Name, "packages", len(pkgs))
		if err := setLabels(ctx, c, existing, recipe, versions); err != nil {
			return nil, err
		}
		return unpacked(ctx, existing, o.Snapshotter, false)
	}
	debs, err := rootfs.Fetch(ctx, filepath.Join(o.WorkDir, "debs"), pkgs, rootfs.WithLogger(o.Logger))
	if err != nil {
		return nil, err
	}
	// A directory of its own: another process may be building too.
	scratch, err := os.MkdirTemp(o.WorkDir, "build-"+versions+"-")
	if err != nil {
		return nil, fmt.Errorf("image work dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	build := filepath.Join(scratch, "root")
	if err := buildRoot(ctx, build, debs, rootfs.PythonModules(o.Packages), o.Logger); err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Name, err)
	}
	o.Logger.Info("packing the root file system as an OCI layer")
	layer, err := WriteLayer(build, filepath.Join(scratch, "layer.tar"))
	if err != nil {
		return nil, err
	}
	labels := map[string]string{LabelRecipe: recipe, LabelVersions: versions}
	img, err := Import(ctx, c, layer, ImageConfig{Name: o.Name, Labels: labels})
	if err != nil {
		return nil, err
	}
	r, err := unpacked(ctx, img, o.Snapshotter, true)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("sandbox image ready", "image", o.Name, "packages", len(pkgs), "layer_bytes", layer.Size, "took", time.Since(start).Round(time.Millisecond))
	return r, nil
}

// Import streams an OCI archive of layer into containerd as image cfg.Name.
func Import(ctx context.Context, c *client.Client, layer *Layer, cfg ImageConfig) (client.Image, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteArchive(pw, layer, cfg)) }()
	imgs, err := c.Import(ctx, pr, client.WithImageLabels(cfg.Labels))
	pr.CloseWithError(errors.New("import finished"))
	if err != nil {
		return nil, fmt.Errorf("import image %s: %w", cfg.Name, err)
	}
	for _, i := range imgs {
		if i.Name == cfg.Name {
			return client.NewImage(c, i), nil
		}
	}
	return nil, fmt.Errorf("import image %s: the archive did not produce it", cfg.Name)
}

func setLabels(ctx context.Context, c *client.Client, img client.Image, recipe, versions string) error {
	rec := img.Metadata()
	rec.Labels = map[string]string{LabelRecipe: recipe, LabelVersions: versions}
	if _, err := c.ImageService().Update(ctx, rec, "labels"); err != nil {
		return fmt.Errorf("label image %s: %w", rec.Name, err)
	}
	return nil
}

func unpacked(ctx context.Context, img client.Image, snapshotter string, built bool) (*Ready, error) {
	ok, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s is unusable (corrupt or incomplete content; remove it and rebuild): %w", img.Name(), err)
	}
	if !ok {
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s (corrupt or incomplete content; remove it and rebuild): %w", img.Name(), err)
		}
	}
	diffs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s rootfs: %w", img.Name(), err)
	}
	return &Ready{Image: img, ChainID: identity.ChainID(diffs).String(), Built: built}, nil
}
