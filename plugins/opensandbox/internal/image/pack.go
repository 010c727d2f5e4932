package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is an uncompressed layer tar written to a file.
type Layer struct {
	Path   string
	Digest digest.Digest
	Size   int64
}

// WriteLayer packs the directory root into an uncompressed tar at path
// (uncompressed: unpacking then costs no decompression, and the layer only
// ever lives on this machine).
func WriteLayer(root, path string) (*Layer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	tw := tar.NewWriter(cw)
	links := map[[2]uint64]string{} // (dev, inode) of multiply linked files
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, seen := links[key]; seen {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			links[key] = rel
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			if _, err := io.Copy(tw, src); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("write layer from %s: %w", root, err)
	}
	return &Layer{Path: path, Digest: digest.NewDigest(digest.SHA256, h), Size: cw.n}, f.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ImageConfig is what the image declares about how to run it.
type ImageConfig struct {
	Name   string
	Labels map[string]string
}

// WriteArchive writes an OCI image layout tar holding one image made of
// layer, named cfg.Name (the annotation containerd's importer reads).
func WriteArchive(w io.Writer, layer *Layer, cfg ImageConfig) error {
	conf := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			User:       fmt.Sprint(SandboxUID),
			Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp"},
			Cmd:        []string{"/usr/bin/python3"},
			WorkingDir: "/workspace",
			Labels:     cfg.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}},
	}
	confJSON, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	confDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(confJSON), Size: int64(len(confJSON))}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    confDesc,
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size}},
	}
	manJSON, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	plat := conf.Platform
	manDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manJSON), Size: int64(len(manJSON)),
		Platform:    &plat,
		Annotations: map[string]string{"io.containerd.image.name": cfg.Name, ocispec.AnnotationRefName: cfg.Name},
	}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manDesc}}
	idxJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{ocispec.ImageIndexFile, idxJSON},
		{blobPath(confDesc.Digest), confJSON},
		{blobPath(manDesc.Digest), manJSON},
	} {
		if err := put(d.name, d.data); err != nil {
			return fmt.Errorf("write image archive: %w", err)
		}
	}
	lf, err := os.Open(layer.Path)
	if err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	defer lf.Close()
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(layer.Digest), Mode: 0o644, Size: layer.Size, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	if _, err := io.Copy(tw, lf); err != nil {
		return fmt.Errorf("write image archive: layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	return nil
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

// ArchiveBytes is WriteArchive into memory (small test images).
func ArchiveBytes(layer *Layer, cfg ImageConfig) ([]byte, error) {
	var b bytes.Buffer
	err := WriteArchive(&b, layer, cfg)
	return b.Bytes(), err
}
