package rootfs

import (
	"path"

	"github.com/hashicorp/go-hclog"
)

// Option adjusts Resolve, Fetch or Assemble. Each option says which calls
// it concerns; the others ignore it.
type Option func(*config)

type config struct {
	exclude  []string
	log      hclog.Logger
	users    []user
	dirs     []string
	symlinks [][2]string
	hostname string
}

type user struct {
	name string
	id   int
	home string
}

func newConfig(opts []Option) *config {
	c := &config{log: hclog.NewNullLogger(), hostname: "sandbox"}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Exclude (Resolve) leaves out packages whose names match any of the
// path.Match patterns: a dependency they would satisfy, directly or
// through Provides, counts as met, and their own dependencies are not
// followed. Use it for what only a package manager needs (dpkg, debconf,
// perl), since no maintainer script ever runs.
func Exclude(patterns ...string) Option {
	return func(c *config) { c.exclude = append(c.exclude, patterns...) }
}

// WithLogger (Fetch, Assemble) receives progress messages.
func WithLogger(l hclog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithUser (Assemble) adds a user and its same-numbered group to
// /etc/passwd and /etc/group, besides root and nobody.
func WithUser(name string, id int, home string) Option {
	return func(c *config) { c.users = append(c.users, user{name, id, home}) }
}

// WithDirs (Assemble) creates directories (relative to the root), such as
// mount points a read-only root must already have.
func WithDirs(dirs ...string) Option {
	return func(c *config) { c.dirs = append(c.dirs, dirs...) }
}

// WithSymlink (Assemble) creates name -> target unless name exists: links
// a maintainer script or update-alternatives would have made.
func WithSymlink(name, target string) Option {
	return func(c *config) { c.symlinks = append(c.symlinks, [2]string{name, target}) }
}

// WithHostname (Assemble) sets /etc/hostname (default "sandbox").
func WithHostname(name string) Option {
	return func(c *config) { c.hostname = name }
}

func (c *config) excluded(name string) bool {
	for _, p := range c.exclude {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
