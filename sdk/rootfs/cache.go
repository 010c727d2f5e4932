package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Key is a content hash of packages (name, version, architecture and
// .deb digest, in any order) and extra inputs (in the given order): equal
// inputs give equal keys on any machine. It is 16 hex digits.
func Key(pkgs []Package, extra ...string) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = p.String() + "@" + p.SHA256
	}
	sort.Strings(lines)
	h := sha256.New()
	// Length-prefixed, so no two different input lists hash alike.
	for _, s := range append(lines, append([]string{"--"}, extra...)...) {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Cached returns dir/name, building it first if it does not exist: build
// writes a file or directory at out, which then takes its place
// atomically, so a crash never leaves a half-built artefact under name.
// out's parent is private scratch space, removed afterwards. Callers
// building the same name in other processes wait for each other.
func Cached(ctx context.Context, dir, name string, build func(ctx context.Context, out string) error) (string, error) {
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache %s: %w", name, err)
	}
	unlock, err := lock(ctx, filepath.Join(dir, "."+name+".lock"))
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", name, err)
	}
	defer unlock()
	if _, err := os.Lstat(final); err == nil {
		return final, nil // another process built it while this one waited
	}
	scratch, err := os.MkdirTemp(dir, "."+name+"-")
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", name, err)
	}
	defer os.RemoveAll(scratch)
	out := filepath.Join(scratch, name)
	if err := build(ctx, out); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	if _, err := os.Lstat(out); err != nil {
		return "", fmt.Errorf("build %s: nothing written: %w", name, err)
	}
	if err := os.Rename(out, final); err != nil {
		return "", fmt.Errorf("cache %s: %w", name, err)
	}
	return final, nil
}

// lock takes an exclusive advisory lock on path, waiting while another
// process holds it.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// Closing the file releases the lock.
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
