package rootfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Resolve returns roots and everything they need through Pre-Depends and
// Depends (never Recommends or Suggests), sorted by name, as if nothing
// were installed. A root may be a virtual package.
//
// Choices are made as apt makes them, deterministically: an alternative
// or provider that is already selected wins; otherwise the first
// alternative that can be satisfied, a real package before providers of
// the same name, and among providers the most important Priority, then
// the name. Choices are settled after all unambiguous dependencies, so
// they see as much of the selection as possible. Essential packages are
// included only when something depends on them. Conflicts and Breaks are
// not checked. Options: Exclude.
func (idx *Index) Resolve(roots []string, opts ...Option) ([]Package, error) {
	c := newConfig(opts)
	for _, p := range c.exclude {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("resolve: exclude pattern %q: %w", p, err)
		}
	}
	r := &resolver{idx: idx, cfg: c, selected: map[string]*Package{}, parent: map[string]string{}}
	for _, name := range roots {
		rel, ok, err := parseRelation(strings.TrimSpace(name), idx.arch)
		if err != nil {
			return nil, fmt.Errorf("resolve: requested package %q: %w", name, err)
		}
		if !ok {
			return nil, fmt.Errorf("resolve: requested package %q is not for %s", name, idx.arch)
		}
		if c.excluded(rel.name) {
			return nil, fmt.Errorf("resolve: requested package %s is excluded", rel.name)
		}
		r.deferred = append(r.deferred, pending{alts: []relation{rel}})
	}
	// Requested packages are settled first, in order, so a later choice
	// sees them selected.
	roots0 := r.deferred
	r.deferred = nil
	for _, p := range roots0 {
		if err := r.settle(p); err != nil {
			return nil, err
		}
	}
	if err := r.run(); err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(r.selected))
	for _, p := range r.selected {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type pending struct {
	from string // the package whose field this is; "" when requested
	alts []relation
}

type resolver struct {
	idx      *Index
	cfg      *config
	selected map[string]*Package
	parent   map[string]string // why each package was selected
	queue    []*Package        // selected, dependencies not yet read
	deferred []pending         // groups that need a choice
}

// run reads dependencies breadth-first; groups with a choice wait until
// no unambiguous dependency is left.
func (r *resolver) run() error {
	for len(r.queue) > 0 || len(r.deferred) > 0 {
		for len(r.queue) > 0 {
			p := r.queue[0]
			r.queue = r.queue[1:]
			for _, alts := range p.depends {
				g := pending{from: p.Name, alts: alts}
				if len(alts) > 1 || len(r.candidates(alts[0])) > 1 {
					r.deferred = append(r.deferred, g)
					continue
				}
				if err := r.settle(g); err != nil {
					return err
				}
			}
		}
		if len(r.deferred) > 0 {
			g := r.deferred[0]
			r.deferred = r.deferred[1:]
			if err := r.settle(g); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle makes sure one alternative of g is met, selecting a package if
// none is yet.
func (r *resolver) settle(g pending) error {
	for _, alt := range g.alts {
		if r.cfg.excluded(alt.name) {
			return nil
		}
		for _, p := range r.candidates(alt) {
			if r.selected[p.Name] != nil || r.cfg.excluded(p.Name) {
				return nil
			}
		}
	}
	for _, alt := range g.alts {
		if c := r.candidates(alt); len(c) > 0 {
			r.selected[c[0].Name] = c[0]
			r.parent[c[0].Name] = g.from
			r.queue = append(r.queue, c[0])
			return nil
		}
	}
	return r.unsatisfiable(g)
}

// candidates lists the packages that satisfy rel, best first.
func (r *resolver) candidates(rel relation) []*Package {
	switch rel.arch {
	case "", "any", "native", r.idx.arch:
	default:
		return nil // another architecture: this index cannot provide it
	}
	var out []*Package
	if p := r.idx.packages[rel.name]; p != nil && satisfies(p.Version, rel.op, rel.version) {
		out = append(out, p)
	}
	var provs []*Package
	for _, pv := range r.idx.providers[rel.name] {
		// A versioned dependency is met only by a versioned Provides.
		if rel.op != "" && (pv.version == "" || !satisfies(pv.version, rel.op, rel.version)) {
			continue
		}
		if len(out) == 0 || pv.pkg != out[0] {
			provs = append(provs, pv.pkg)
		}
	}
	sort.Slice(provs, func(i, j int) bool {
		if a, b := priorityRank(provs[i].Priority), priorityRank(provs[j].Priority); a != b {
			return a < b
		}
		return provs[i].Name < provs[j].Name
	})
	return append(out, provs...)
}

func priorityRank(p string) int {
	switch p {
	case "required":
		return 0
	case "important":
		return 1
	case "standard":
		return 2
	case "optional":
		return 3
	}
	return 4
}

func (r *resolver) unsatisfiable(g pending) error {
	var why []string
	for _, alt := range g.alts {
		s := alt.String()
		if p := r.idx.packages[alt.name]; p != nil {
			s += " (candidate " + p.Version + ")"
		} else if len(r.idx.providers[alt.name]) == 0 {
			s += " (unknown)"
		}
		why = append(why, s)
	}
	return fmt.Errorf("resolve: nothing satisfies %s, needed by %s", strings.Join(why, " | "), r.chain(g.from))
}

// chain explains why name was selected: "b <- a <- requested".
func (r *resolver) chain(name string) string {
	parts := []string{}
	for name != "" && len(parts) < 32 {
		parts = append(parts, name)
		name = r.parent[name]
	}
	return strings.Join(append(parts, "requested"), " <- ")
}
