package proto

import (
	"fmt"
	"strconv"
	"strings"
)

// ImageManifest is the file, at the root of a prebuilt workspace image
// (beside its ws/ directory), that lists what ws/ holds: the agent takes
// it as what the host already has, so its first scan reports only what
// code changed.
const ImageManifest = "manifest"

// ManifestEntry is one line of an image manifest: a directory or a
// regular file below ws/ as the image holds it (mtime in whole seconds,
// which is what the image records).
type ManifestEntry struct {
	Rel   string
	Dir   bool
	Perm  uint32
	Size  int64
	Mtime int64
}

// FormatManifestLine is e's line: kind, permission bits (octal), size,
// mtime, then the path (which holds no newline) to the end of the line.
func FormatManifestLine(e ManifestEntry) string {
	kind := "f"
	if e.Dir {
		kind = "d"
	}
	return fmt.Sprintf("%s %o %d %d %s\n", kind, e.Perm, e.Size, e.Mtime, e.Rel)
}

// ParseManifestLine reads a line FormatManifestLine wrote (without its
// newline).
func ParseManifestLine(line string) (ManifestEntry, error) {
	f := strings.SplitN(line, " ", 5)
	if len(f) != 5 || (f[0] != "f" && f[0] != "d") || f[4] == "" {
		return ManifestEntry{}, fmt.Errorf("bad manifest line %q", line)
	}
	perm, err1 := strconv.ParseUint(f[1], 8, 32)
	size, err2 := strconv.ParseInt(f[2], 10, 64)
	mtime, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return ManifestEntry{}, fmt.Errorf("bad manifest line %q", line)
	}
	return ManifestEntry{Rel: f[4], Dir: f[0] == "d", Perm: uint32(perm), Size: size, Mtime: mtime}, nil
}
