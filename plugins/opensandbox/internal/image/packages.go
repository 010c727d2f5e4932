// Package image builds the sandbox's Python root file system from Debian
// packages (sdk/rootfs; no registry needed), packs it as a one-layer OCI
// image and imports it into containerd.
package image

import (
	"slices"

	"github.com/mcpruntime/mcpruntime/sdk/rootfs"
)

// BasePackages are always installed: the interpreter the kernel needs and a
// POSIX shell for subprocess/os.system.
var BasePackages = []string{"python3.11", "python3", "dash"}

// DefaultExtraPackages are what agents expect to import: the data stack and
// matplotlib, whose plots the kernel shows as images.
var DefaultExtraPackages = []string{"python3-numpy", "python3-pandas", "python3-matplotlib"}

// recipeVersion changes whenever the way the root file system is assembled
// changes, so images built by an older recipe are rebuilt.
const recipeVersion = "osb-rootfs-8"

// RecipeKey identifies what was asked for (package names and recipe), so a
// plugin start can accept an existing image without asking apt anything.
func RecipeKey(requested []string) string {
	names := slices.Clone(requested)
	slices.Sort(names)
	return rootfs.Key(nil, append([]string{recipeVersion}, slices.Compact(names)...)...)
}

// VersionsKey identifies exactly what was installed (every package's
// version and digest): a rebuild is needed only when one changed.
func VersionsKey(pkgs []rootfs.Package) string {
	return rootfs.Key(pkgs, recipeVersion)
}
