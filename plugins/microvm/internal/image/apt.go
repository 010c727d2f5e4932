package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// pkg is a Debian package pinned to the version apt would install now.
type pkg struct {
	Name, Version string
}

func (p pkg) String() string { return p.Name + "=" + p.Version }

func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// candidates returns the candidate version of each package.
func candidates(ctx context.Context, names []string) ([]pkg, error) {
	out, err := run(ctx, "", "apt-cache", append([]string{"show", "--no-all-versions"}, names...)...)
	if err != nil {
		return nil, fmt.Errorf("look up package versions (is this Debian with `apt-get update` done?): %w", err)
	}
	var pkgs []pkg
	var cur pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			cur = pkg{Name: v}
		} else if v, ok := strings.CutPrefix(line, "Version: "); ok && cur.Name != "" {
			cur.Version = v
			pkgs = append(pkgs, cur)
			cur = pkg{}
		}
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// closure lists roots and their recursive Depends/Pre-Depends, minus
// packages matching skip (tools a package manager needs, not Python).
func closure(ctx context.Context, roots []string, skip func(string) bool) ([]string, error) {
	out, err := run(ctx, "", "apt-cache", append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, roots...)...)
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "<") {
			continue
		}
		if !seen[line] && !skip(line) {
			seen[line] = true
			names = append(names, line)
		}
	}
	sort.Strings(names)
	return names, nil
}

// download fetches the exact package versions into dir (kept as a cache)
// and returns the .deb paths.
func download(ctx context.Context, dir string, pkgs []pkg, progress func(string, ...any)) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths, missing []string
	for _, p := range pkgs {
		matches, _ := filepath.Glob(filepath.Join(dir, p.Name+"_"+strings.ReplaceAll(p.Version, ":", "%3a")+"_*.deb"))
		if len(matches) == 1 {
			paths = append(paths, matches[0])
			continue
		}
		missing = append(missing, p.String())
	}
	if len(missing) > 0 {
		progress("downloading %d Debian packages", len(missing))
		if _, err := run(ctx, dir, "apt-get", append([]string{"download", "-q", "-o", "APT::Sandbox::User=root"}, missing...)...); err != nil {
			return nil, fmt.Errorf("download packages: %w", err)
		}
		return download(ctx, dir, pkgs, func(string, ...any) {})
	}
	sort.Strings(paths)
	return paths, nil
}

// unpack extracts a .deb's files into root (no maintainer scripts run).
func unpack(ctx context.Context, deb, root string) error {
	if _, err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
		return fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
	}
	return nil
}
