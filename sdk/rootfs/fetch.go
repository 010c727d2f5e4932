package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Fetch makes sure cacheDir holds the .deb of every package and returns
// their paths in the order of pkgs. Files already cached are reused when
// their SHA-256 matches the index; the rest are downloaded with apt (its
// sources, proxies and signature checks) and verified the same way.
// Concurrent callers sharing cacheDir wait for each other. Options:
// WithLogger.
func Fetch(ctx context.Context, cacheDir string, pkgs []Package, opts ...Option) ([]string, error) {
	c := newConfig(opts)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("fetch packages: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(cacheDir, ".fetch.lock"))
	if err != nil {
		return nil, fmt.Errorf("fetch packages: %w", err)
	}
	defer unlock()
	paths := make([]string, len(pkgs))
	var missing []string
	for i, p := range pkgs {
		paths[i] = filepath.Join(cacheDir, debName(p))
		switch err := verify(paths[i], p); {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, p.Name+"="+p.Version)
		default:
			c.log.Warn("cached package is damaged; downloading it again", "package", p.String(), "error", err)
			if err := os.Remove(paths[i]); err != nil {
				return nil, fmt.Errorf("fetch packages: %w", err)
			}
			missing = append(missing, p.Name+"="+p.Version)
		}
	}
	if len(missing) == 0 {
		return paths, nil
	}
	c.log.Info("downloading Debian packages", "count", len(missing))
	// Run as root: apt's unprivileged download user may not write cacheDir.
	args := append([]string{"download", "-q", "-o", "APT::Sandbox::User=root"}, missing...)
	if _, err := run(ctx, cacheDir, "apt-get", args...); err != nil {
		return nil, fmt.Errorf("fetch %d packages: %w", len(missing), err)
	}
	for i, p := range pkgs {
		if err := verify(paths[i], p); err != nil {
			return nil, fmt.Errorf("fetch packages: %s after download: %w", p, err)
		}
	}
	return paths, nil
}

// debName is the file name `apt-get download` gives a package.
func debName(p Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// verify checks a cached .deb against the index's size and digest.
func verify(path string, p Package) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if p.Size > 0 && n != p.Size {
		return fmt.Errorf("%s: %d bytes, the index says %d", filepath.Base(path), n, p.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); p.SHA256 != "" && sum != p.SHA256 {
		return fmt.Errorf("%s: SHA-256 %s, the index says %s", filepath.Base(path), sum, p.SHA256)
	}
	return nil
}
