// Package image builds the sandbox's Python root file system from Debian
// packages (no registry needed), packs it as a one-layer OCI image and
// imports it into containerd.
package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// BasePackages are always installed: the interpreter the kernel needs and a
// POSIX shell for subprocess/os.system.
var BasePackages = []string{"python3.11", "python3", "dash"}

// DefaultExtraPackages are what agents expect to import.
var DefaultExtraPackages = []string{"python3-numpy", "python3-pandas"}

// recipeVersion changes whenever the way the root file system is assembled
// changes, so images built by an older recipe are rebuilt.
const recipeVersion = "osb-rootfs-5"

// Package is one resolved Debian package.
type Package struct {
	Name    string
	Version string
	Arch    string
}

// debName is the file name `apt-get download` gives the package.
func (p Package) debName() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// RecipeKey identifies what was asked for (package names and recipe), so a
// plugin start can accept an existing image without asking apt anything.
func RecipeKey(requested []string) string {
	names := append([]string(nil), requested...)
	slices.Sort(names)
	names = slices.Compact(names)
	sum := sha256.Sum256([]byte(recipeVersion + "\n" + strings.Join(names, "\n")))
	return hex.EncodeToString(sum[:8])
}

// VersionsKey identifies exactly what was installed: a rebuild is needed
// only when a package version changed.
func VersionsKey(pkgs []Package) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = p.Name + "=" + p.Version + "/" + p.Arch
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(recipeVersion + "\n" + strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:8])
}

var instLine = regexp.MustCompile(`^Inst (\S+) \((\S+) .*\[([^\]]+)\]\)`)

// Resolve asks apt for the full dependency closure of names as if nothing
// were installed (an empty dpkg status file), without recommends.
func Resolve(ctx context.Context, workDir string, names []string) ([]Package, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("resolve packages: apt-get not found (the image is built from Debian packages): %w", err)
	}
	status := filepath.Join(workDir, "empty-dpkg-status")
	if err := os.WriteFile(status, nil, 0o644); err != nil {
		return nil, fmt.Errorf("resolve packages: %w", err)
	}
	args := []string{
		"-o", "Dir::State::status=" + status,
		"-o", "APT::Install-Recommends=false",
		"-o", "APT::Install-Suggests=false",
		"-o", "Debug::NoLocking=true",
		"install", "-s", "-qq",
	}
	cmd := exec.CommandContext(ctx, "apt-get", append(args, names...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("resolve packages %v: apt-get: %w: %s (run apt-get update?)", names, err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := instLine.FindStringSubmatch(sc.Text()); m != nil {
			pkgs = append(pkgs, Package{Name: m[1], Version: m[2], Arch: m[3]})
		}
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("resolve packages %v: apt resolved nothing: %s", names, strings.TrimSpace(stderr.String()))
	}
	return pkgs, nil
}

// Download fetches the packages not already in cacheDir and returns the
// paths of all of them.
func Download(ctx context.Context, cacheDir string, pkgs []Package) ([]string, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("download packages: %w", err)
	}
	var missing []string
	paths := make([]string, len(pkgs))
	for i, p := range pkgs {
		paths[i] = filepath.Join(cacheDir, p.debName())
		if _, err := os.Stat(paths[i]); err != nil {
			missing = append(missing, p.Name+"="+p.Version)
		}
	}
	if len(missing) > 0 {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-qq"}, missing...)...)
		cmd.Dir = cacheDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %d packages: %w: %s", len(missing), err, strings.TrimSpace(string(out)))
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("download packages: %s missing after apt-get download: %w", filepath.Base(p), err)
		}
	}
	return paths, nil
}
