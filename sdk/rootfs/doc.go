// Package rootfs builds Debian root file systems for sandbox images: it
// resolves a set of packages against apt's current candidates with one
// dependency resolver, fetches the exact .debs into a cache (verified by
// SHA-256), unpacks them into a directory shaped like a merged-/usr Debian
// system, and caches derived artefacts under a content hash of everything
// that went into them.
//
// No maintainer script runs: the result is a file tree, not an installed
// system. Packages that only matter to a package manager (dpkg, debconf,
// perl) can be left out with Exclude.
package rootfs
