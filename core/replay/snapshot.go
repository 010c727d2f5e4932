package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/internal/atomicfile"
	"github.com/mcpruntime/mcpruntime/core/internal/confine"
)

// DefaultMaxFileSize caps the files a workspace snapshot stores; larger
// ones are listed in the manifest's Skipped and left alone on restore.
const DefaultMaxFileSize = 64 << 20

// Manifest is one workspace snapshot: every file, directory and symlink
// below the workspace (minus the excluded paths), sorted by path.
type Manifest struct {
	Files   []FileEntry       `json:"files"`
	Skipped map[string]string `json:"skipped,omitempty"`
}

// FileEntry is one path of a manifest.
type FileEntry struct {
	Path   string `json:"path"` // slash-separated, relative to the workspace
	Type   string `json:"type"` // file, dir or symlink
	Mode   uint32 `json:"mode"` // permission bits
	Size   int64  `json:"size,omitempty"`
	Hash   string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"` // of a symlink
}

// SnapshotStats say what a snapshot cost.
type SnapshotStats struct {
	Files       int   `json:"files"`
	Bytes       int64 `json:"bytes"`
	Hashed      int   `json:"hashed"`      // files read (not known unchanged)
	NewObjects  int   `json:"new_objects"` // contents stored for the first time
	NewBytes    int64 `json:"new_bytes"`
	NewManifest bool  `json:"new_manifest"`
}

// Snapshotter takes content-addressed snapshots of one workspace. It
// remembers the hash of each file by (size, mtime, inode), so unchanged
// files are not read again.
type Snapshotter struct {
	Workspace string
	// Exclude are slash paths relative to the workspace left out of
	// snapshots and untouched by restores (.replay is always excluded).
	Exclude     []string
	MaxFileSize int64

	mu    sync.Mutex
	cache map[string]cacheEntry
}

type cacheEntry struct {
	size  int64
	mtime int64
	ino   uint64
	hash  string
}

// NewSnapshotter returns a snapshotter of workspace excluding .replay,
// .mcpruntime and the given extra paths (absolute or workspace-relative).
func NewSnapshotter(workspace string, exclude ...string) *Snapshotter {
	s := &Snapshotter{Workspace: workspace, MaxFileSize: DefaultMaxFileSize, Exclude: []string{Dir, ".mcpruntime"}}
	for _, e := range exclude {
		if filepath.IsAbs(e) {
			rel, err := filepath.Rel(workspace, e)
			if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				continue
			}
			e = rel
		}
		s.Exclude = append(s.Exclude, filepath.ToSlash(e))
	}
	return s
}

func (s *Snapshotter) excluded(rel string) bool {
	for _, e := range s.Exclude {
		if rel == e || strings.HasPrefix(rel, e+"/") {
			return true
		}
	}
	return false
}

func objectsDir(ws string) string   { return filepath.Join(ws, Dir, "objects") }
func manifestsDir(ws string) string { return filepath.Join(ws, Dir, "manifests") }

// ObjectPath is where content with the given sha256 is stored.
func ObjectPath(workspace, hash string) string { return filepath.Join(objectsDir(workspace), hash) }

// Snapshot records the workspace as it is now and returns the manifest id.
func (s *Snapshotter) Snapshot() (string, *Manifest, SnapshotStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]cacheEntry{}
	}
	var st SnapshotStats
	if err := os.MkdirAll(objectsDir(s.Workspace), 0o755); err != nil {
		return "", nil, st, err
	}
	if err := os.MkdirAll(manifestsDir(s.Workspace), 0o755); err != nil {
		return "", nil, st, err
	}
	max := s.MaxFileSize
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	man := &Manifest{Files: []FileEntry{}}
	skip := func(rel, why string) {
		if man.Skipped == nil {
			man.Skipped = map[string]string{}
		}
		man.Skipped[rel] = why
	}
	// Files modified in the last moments may change again within the
	// same mtime tick: do not trust the cache for them.
	racy := time.Now().Add(-2 * time.Second).UnixNano()
	seen := map[string]bool{}
	err := filepath.WalkDir(s.Workspace, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(s.Workspace, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			if err != nil {
				return err
			}
			return nil
		}
		if s.excluded(rel) {
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			skip(rel, "unreadable: "+err.Error())
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			skip(rel, "unreadable: "+err.Error())
			return nil
		}
		mode := uint32(info.Mode().Perm())
		switch {
		case d.IsDir():
			man.Files = append(man.Files, FileEntry{Path: rel, Type: "dir", Mode: mode})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				skip(rel, "unreadable symlink: "+err.Error())
				return nil
			}
			man.Files = append(man.Files, FileEntry{Path: rel, Type: "symlink", Mode: mode, Target: target})
		case info.Mode().IsRegular():
			if info.Size() > max {
				skip(rel, fmt.Sprintf("larger than %d MiB (%d bytes): not snapshotted", max>>20, info.Size()))
				return nil
			}
			seen[rel] = true
			ce := cacheEntry{size: info.Size(), mtime: info.ModTime().UnixNano(), ino: inode(info)}
			if c, ok := s.cache[rel]; ok && c.size == ce.size && c.mtime == ce.mtime && c.ino == ce.ino && ce.mtime < racy {
				ce.hash = c.hash // its object was stored or seen when cached

			}
			if ce.hash == "" {
				h, size, n, err := s.store(path)
				if err != nil {
					skip(rel, "unreadable: "+err.Error())
					return nil
				}
				st.Hashed++
				if n > 0 {
					st.NewObjects++
					st.NewBytes += n
				}
				ce.hash, ce.size = h, size
			}
			s.cache[rel] = ce
			st.Files++
			st.Bytes += ce.size
			man.Files = append(man.Files, FileEntry{Path: rel, Type: "file", Mode: mode, Size: ce.size, Hash: ce.hash})
		default:
			skip(rel, "not a regular file, directory or symlink ("+info.Mode().Type().String()+")")
		}
		return nil
	})
	if err != nil {
		return "", nil, st, err
	}
	for rel := range s.cache {
		if !seen[rel] {
			delete(s.cache, rel)
		}
	}
	sort.Slice(man.Files, func(i, j int) bool { return man.Files[i].Path < man.Files[j].Path })
	b, err := json.Marshal(man)
	if err != nil {
		return "", nil, st, err
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:])
	mp := filepath.Join(manifestsDir(s.Workspace), id+".json")
	if _, err := os.Stat(mp); err != nil {
		if err := atomicfile.WriteBytes(mp, b, 0o644); err != nil {
			return "", nil, st, err
		}
		st.NewManifest = true
	}
	return id, man, st, nil
}

// store hashes the file at path and copies it into the object store
// unless its content is there already. It returns the hash, the size and
// how many bytes were newly stored.
func (s *Snapshotter) store(path string) (string, int64, int64, error) {
	h, size, err := hashFile(path)
	if err != nil {
		return "", 0, 0, err
	}
	if _, err := os.Stat(ObjectPath(s.Workspace, h)); err == nil {
		return h, size, 0, nil
	}
	// Copy and hash what was copied: the file may change under us.
	in, err := os.Open(path)
	if err != nil {
		return "", 0, 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(objectsDir(s.Workspace), ".tmp-")
	if err != nil {
		return "", 0, 0, err
	}
	defer os.Remove(tmp.Name())
	hw := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, hw), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, 0, err
	}
	h = hex.EncodeToString(hw.Sum(nil))
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", 0, 0, err
	}
	if err := os.Rename(tmp.Name(), ObjectPath(s.Workspace, h)); err != nil {
		return "", 0, 0, err
	}
	return h, n, n, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// LoadManifest reads manifest id of workspace.
func LoadManifest(workspace, id string) (*Manifest, error) {
	if !isHash(id) {
		return nil, fmt.Errorf("bad workspace snapshot id %q", id)
	}
	b, err := os.ReadFile(filepath.Join(manifestsDir(workspace), id+".json"))
	if err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: %w", id[:12], err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != id {
		return nil, fmt.Errorf("workspace snapshot %s is corrupt (content does not match its id)", id[:12])
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: %w", id[:12], err)
	}
	return &m, nil
}

// RestoreStats say what a restore changed.
type RestoreStats struct {
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
	// NotRestored are paths the snapshot did not hold (too large,
	// unreadable when recorded): left as they are now.
	NotRestored map[string]string `json:"not_restored,omitempty"`
}

// Restore makes the workspace equal to manifest id: files are rewritten
// from the object store, files the snapshot does not have are removed,
// excluded paths are left alone. Every object is checked before anything
// changes, so a damaged store fails the restore without touching files.
func (s *Snapshotter) Restore(id string) (*RestoreStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	man, err := LoadManifest(s.Workspace, id)
	if err != nil {
		return nil, err
	}
	// The store lives in the workspace, where sandbox code can write: a
	// manifest is checked like untrusted input before anything changes.
	if err := s.checkStore(); err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: %w", id[:12], err)
	}
	for _, f := range man.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || s.excluded(f.Path) {
			return nil, fmt.Errorf("workspace snapshot %s: bad path %q", id[:12], f.Path)
		}
		if f.Type != "file" {
			continue
		}
		if !isHash(f.Hash) {
			return nil, fmt.Errorf("workspace snapshot %s: bad content id %q for %s", id[:12], f.Hash, f.Path)
		}
		st, err := os.Lstat(ObjectPath(s.Workspace, f.Hash))
		if err != nil || st.Size() != f.Size {
			return nil, fmt.Errorf("workspace snapshot %s: content of %s is missing from %s; nothing was changed", id[:12], f.Path, objectsDir(s.Workspace))
		}
	}
	rs := &RestoreStats{NotRestored: man.Skipped}
	want := map[string]FileEntry{}
	for _, f := range man.Files {
		want[f.Path] = f
	}
	// What is there now.
	type have struct {
		rel string
		typ string
	}
	var now []have
	_ = filepath.WalkDir(s.Workspace, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(s.Workspace, path)
		rel = filepath.ToSlash(rel)
		if rel == "." || err != nil {
			return nil
		}
		if s.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		typ := "file"
		if d.IsDir() {
			typ = "dir"
		} else if d.Type()&fs.ModeSymlink != 0 {
			typ = "symlink"
		}
		now = append(now, have{rel, typ})
		return nil
	})
	// Remove what the snapshot does not have or has as another type,
	// deepest first; files it skipped are kept.
	for i := len(now) - 1; i >= 0; i-- {
		h := now[i]
		if _, kept := man.Skipped[h.rel]; kept {
			continue
		}
		w, ok := want[h.rel]
		if ok && w.Type == h.typ {
			continue
		}
		p := filepath.Join(s.Workspace, filepath.FromSlash(h.rel))
		if h.typ == "dir" && !ok {
			if os.Remove(p) == nil { // not empty: holds a skipped file
				rs.Removed++
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return rs, fmt.Errorf("restore: remove %s: %w", h.rel, err)
		}
		rs.Removed++
	}
	for _, f := range man.Files { // sorted: parents before children
		p := filepath.Join(s.Workspace, filepath.FromSlash(f.Path))
		// A symlink the snapshot (or sandbox code since) put where a
		// directory of this path should be would carry the write out of
		// the workspace.
		if err := s.insideWorkspace(filepath.Dir(p)); err != nil {
			return rs, fmt.Errorf("restore %s: %w", f.Path, err)
		}
		switch f.Type {
		case "dir":
			if err := os.MkdirAll(p, 0o755); err != nil {
				return rs, fmt.Errorf("restore %s: %w", f.Path, err)
			}
			_ = os.Chmod(p, fs.FileMode(f.Mode)|0o700)
		case "symlink":
			if t, err := os.Readlink(p); err == nil && t == f.Target {
				rs.Unchanged++
				continue
			}
			_ = os.RemoveAll(p)
			if err := os.Symlink(f.Target, p); err != nil {
				return rs, fmt.Errorf("restore %s: %w", f.Path, err)
			}
			rs.Written++
		case "file":
			if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Size() == f.Size {
				if h, _, err := hashFile(p); err == nil && h == f.Hash {
					_ = os.Chmod(p, fs.FileMode(f.Mode))
					rs.Unchanged++
					continue
				}
			}
			if err := copyObject(ObjectPath(s.Workspace, f.Hash), p, fs.FileMode(f.Mode)); err != nil {
				return rs, fmt.Errorf("restore %s: %w", f.Path, err)
			}
			rs.Written++
		}
	}
	s.cache = nil // mtimes changed
	return rs, nil
}

// checkStore refuses a store whose directories are symlinks: objects are
// then read from wherever the link points.
func (s *Snapshotter) checkStore() error {
	for _, d := range []string{filepath.Join(s.Workspace, Dir), objectsDir(s.Workspace)} {
		st, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory (a symlink?): the store is not trusted", d)
		}
	}
	return nil
}

// insideWorkspace checks that dir, with its symlinks followed, is the
// workspace or below it. Where dir does not exist yet, its nearest existing
// ancestor is what counts: MkdirAll would create the rest below it.
func (s *Snapshotter) insideWorkspace(dir string) error {
	if !confine.Inside(dir, s.Workspace) {
		return fmt.Errorf("%s leads out of the workspace (to %s): not restored", dir, confine.Resolve(dir))
	}
	return nil
}

// isHash reports whether h is a sha256 in lower-case hex, as object names are.
func isHash(h string) bool {
	return len(h) == 64 && strings.Trim(h, "0123456789abcdef") == ""
}

func copyObject(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, in, mode)
}
