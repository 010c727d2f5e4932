package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Package is one binary package of the index: the candidate version apt
// would install.
type Package struct {
	// Name, Version and Arch identify the package ("all" for
	// architecture-independent ones).
	Name, Version, Arch string
	// SHA256 and Size are the .deb's, as the signed index states them.
	SHA256 string
	Size   int64
	// Essential packages are assumed present by other packages' dependencies;
	// they are only included when something names them (see Index.Resolve).
	Essential bool
	// Priority is the archive priority (required, important, ... optional).
	Priority string

	depends  [][]relation // Pre-Depends then Depends
	provides []relation
}

func (p Package) String() string { return p.Name + "=" + p.Version + "/" + p.Arch }

// Dependencies lists the package names in Pre-Depends and Depends, the
// first alternative of each.
func (p Package) Dependencies() []string {
	names := make([]string, len(p.depends))
	for i, g := range p.depends {
		names[i] = g[0].name
	}
	return names
}

// Index is a parsed Packages index: one candidate per package name, and
// who provides each virtual name.
type Index struct {
	arch      string
	packages  map[string]*Package
	providers map[string][]provider
}

type provider struct {
	pkg     *Package
	version string // the provided version, "" when unversioned
}

// LoadIndex reads apt's candidate versions (what `apt-get install` would
// pick now, pins included) for the host's native architecture.
func LoadIndex(ctx context.Context) (*Index, error) {
	arch, err := run(ctx, "", "dpkg", "--print-architecture")
	if err != nil {
		return nil, fmt.Errorf("load package index: native architecture: %w", err)
	}
	cmd := exec.CommandContext(ctx, "apt-cache", "dumpavail")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("load package index: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load package index: apt-cache (is this Debian?): %w", err)
	}
	idx, perr := ParseIndex(out, strings.TrimSpace(string(arch)))
	// Drain what the parser left so apt-cache is not killed by SIGPIPE.
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("load package index: apt-cache dumpavail: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if perr != nil {
		return nil, fmt.Errorf("load package index: %w", perr)
	}
	if len(idx.packages) == 0 {
		return nil, fmt.Errorf("load package index: apt knows no packages (run `apt-get update`)")
	}
	return idx, nil
}

// ParseIndex reads a Packages file (deb822 stanzas) for architecture arch.
// Packages built for another architecture are ignored; when a name occurs
// twice the higher version wins.
func ParseIndex(r io.Reader, arch string) (*Index, error) {
	idx := &Index{arch: arch, packages: map[string]*Package{}, providers: map[string][]provider{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	fields := map[string]string{}
	line := 0
	flush := func() error {
		defer clear(fields)
		if len(fields) == 0 {
			return nil
		}
		p, err := newPackage(fields, arch)
		if err != nil {
			return fmt.Errorf("stanza ending at line %d: %w", line, err)
		}
		if p != nil {
			idx.add(p)
		}
		return nil
	}
	last := ""
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case strings.TrimSpace(text) == "":
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
		case text[0] == ' ' || text[0] == '\t':
			// A continuation line; only Description has them in practice.
			if last != "" {
				fields[last] += " " + strings.TrimSpace(text)
			}
		default:
			k, v, ok := strings.Cut(text, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: not a field: %q", line, text)
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	idx.indexProviders()
	return idx, nil
}

// newPackage builds a Package from a stanza, or nil for another
// architecture's package.
func newPackage(f map[string]string, arch string) (*Package, error) {
	p := &Package{
		Name: f["Package"], Version: f["Version"], Arch: f["Architecture"],
		SHA256: f["SHA256"], Essential: f["Essential"] == "yes", Priority: f["Priority"],
	}
	if p.Name == "" || p.Version == "" {
		return nil, fmt.Errorf("missing Package or Version")
	}
	if p.Arch != arch && p.Arch != "all" {
		return nil, nil
	}
	if s := f["Size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: Size: %w", p.Name, err)
		}
		p.Size = n
	}
	for _, k := range []string{"Pre-Depends", "Depends"} {
		groups, err := parseRelations(f[k], arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.Name, k, err)
		}
		p.depends = append(p.depends, groups...)
	}
	provides, err := parseRelations(f["Provides"], arch)
	if err != nil {
		return nil, fmt.Errorf("%s: Provides: %w", p.Name, err)
	}
	for _, g := range provides {
		p.provides = append(p.provides, g...)
	}
	return p, nil
}

func (idx *Index) add(p *Package) {
	if old, ok := idx.packages[p.Name]; ok && CompareVersions(old.Version, p.Version) >= 0 {
		return
	}
	idx.packages[p.Name] = p
}

func (idx *Index) indexProviders() {
	for _, p := range idx.packages {
		for _, v := range p.provides {
			idx.providers[v.name] = append(idx.providers[v.name], provider{pkg: p, version: v.version})
		}
	}
}

// Package returns the candidate of the named (real, not virtual) package.
func (idx *Index) Package(name string) (Package, bool) {
	p, ok := idx.packages[name]
	if !ok {
		return Package{}, false
	}
	return *p, true
}
