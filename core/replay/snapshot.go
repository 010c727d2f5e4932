package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// The workspace, the store included, is written by sandbox code and by
// other sessions sharing it, at any moment. Snapshots and restores
// therefore reach every path in it through sdk/nofollow: relative to
// directory fds, without following any symlink, so an entry swapped for a
// symlink between listing and opening cannot make a snapshot store a host
// file, nor a restore read or write one outside the workspace.

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
	swept string // sweepGeneration when the cache was last valid
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

// Slash paths of the store below the workspace.
const (
	objectsRel   = Dir + "/objects"
	manifestsRel = Dir + "/manifests"
)

// errChanging: a file kept changing while it was being stored.
var errChanging = errors.New("changed while it was being snapshotted")

// Snapshot records the workspace as it is now and returns the manifest id.
func (s *Snapshotter) Snapshot() (string, *Manifest, SnapshotStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]cacheEntry{}
	}
	var st SnapshotStats
	// The store lock is held until the manifest is written: see lock.go.
	w, err := openWriter(s.Workspace)
	if err != nil {
		return "", nil, st, fmt.Errorf("snapshot: %w", err)
	}
	defer w.close()
	root, objects, manifests := w.root, w.objects, w.manifests
	// A retention sweep may have removed objects the cache knows as
	// stored: then nothing cached is trusted.
	if gen := sweepGeneration(root); gen != s.swept {
		s.cache, s.swept = map[string]cacheEntry{}, gen
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
	err = root.Walk(func(rel string, info fs.FileInfo, parent *nofollow.Dir, err error) error {
		if s.excluded(rel) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err != nil { // a directory that could not be opened or listed
			skip(rel, "unreadable: "+err.Error())
			return nil
		}
		mode := uint32(info.Mode().Perm())
		switch {
		case info.IsDir():
			man.Files = append(man.Files, FileEntry{Path: rel, Type: "dir", Mode: mode})
		case info.Mode()&fs.ModeSymlink != 0:
			// Recorded as a symlink; its target is never opened.
			target, err := parent.Readlink(info.Name())
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
			ce := cacheEntry{size: info.Size(), mtime: info.ModTime().UnixNano(), ino: nofollow.Ino(info)}
			if c, ok := s.cache[rel]; ok && c.size == ce.size && c.mtime == ce.mtime && c.ino == ce.ino && ce.mtime < racy {
				ce.hash = c.hash // its object was stored or seen when cached, and not swept since
			}
			if ce.hash == "" {
				h, size, n, err := s.store(parent, info.Name(), objects, max)
				if err != nil {
					// Swapped for a symlink or something else since the
					// listing, grown too large, unreadable: not recorded.
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
		return "", nil, st, fmt.Errorf("snapshot %s: %w", s.Workspace, err)
	}
	for rel := range s.cache {
		if !seen[rel] {
			delete(s.cache, rel)
		}
	}
	sort.Slice(man.Files, func(i, j int) bool { return man.Files[i].Path < man.Files[j].Path })
	id, written, err := writeManifest(manifests, man)
	if err != nil {
		return "", nil, st, fmt.Errorf("snapshot: %w", err)
	}
	st.NewManifest = written
	return id, man, st, nil
}

// writeManifest stores man under its id (the sha256 of its JSON) and
// reports whether it had to be written: one already there is touched, so
// the retention sweep counts it as recent until a log line refers to it.
func writeManifest(manifests *nofollow.Dir, man *Manifest) (string, bool, error) {
	b, err := json.Marshal(man)
	if err != nil {
		return "", false, err
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:])
	if fi, err := manifests.Lstat(id + ".json"); err == nil && fi.Mode().IsRegular() && touch(manifests, id+".json") == nil {
		return id, false, nil
	}
	err = manifests.ReplaceFile(id+".json", 0o644, func(f *os.File) error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		return f.Sync()
	})
	if err != nil {
		return "", false, fmt.Errorf("write manifest: %w", err)
	}
	return id, true, nil
}

// sweptRel is replaced by every retention sweep that removed objects
// (under the store lock): its identity tells snapshotters that objects
// they cached as stored may be gone.
const sweptRel = Dir + "/swept"

// sweepGeneration identifies the last sweep that removed objects.
func sweepGeneration(root *nofollow.Dir) string {
	fi, err := root.Lstat(sweptRel)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", nofollow.Ino(fi), fi.ModTime().UnixNano())
}

// hasObject reports whether the store holds a regular file h of size bytes.
func hasObject(objects *nofollow.Dir, h string, size int64) bool {
	fi, err := objects.Lstat(h)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// touch sets the mtime of rel in d to now, without following a symlink.
func touch(d *nofollow.Dir, rel string) error {
	now := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	return d.At("touch", rel, func(dirfd int, name string) error {
		return unix.UtimesNanoAt(dirfd, name, now, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// openStoreDir opens a directory of the store (creating it if asked),
// refusing one that is a symlink or below one.
func openStoreDir(root *nofollow.Dir, rel string, create bool) (*nofollow.Dir, error) {
	if create {
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return nil, storeErr(rel, err)
		}
	}
	d, err := root.OpenDir(rel)
	if err != nil {
		return nil, storeErr(rel, err)
	}
	return d, nil
}

func storeErr(rel string, err error) error {
	if errors.Is(err, nofollow.ErrSymlink) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s is a symlink or not a directory, or below one: the store is not trusted: %w", rel, err)
	}
	return fmt.Errorf("store %s: %w", rel, err)
}

// store hashes the regular file name of dir (opened without following a
// symlink: what was listed as a file may be a symlink by now) and copies it
// into the object store unless its content is there already. It returns
// the hash, the size and how many bytes were newly stored.
func (s *Snapshotter) store(dir *nofollow.Dir, name string, objects *nofollow.Dir, max int64) (string, int64, int64, error) {
	f, fi, err := dir.Open(name)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	if fi.Size() > max {
		return "", 0, 0, fmt.Errorf("larger than %d MiB (%d bytes) once opened", max>>20, fi.Size())
	}
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", 0, 0, err
		}
		h, size, err := hashReader(io.LimitReader(f, max+1))
		if err != nil {
			return "", 0, 0, err
		}
		if size > max {
			return "", 0, 0, fmt.Errorf("grew beyond %d MiB while read", max>>20)
		}
		if hasObject(objects, h, size) {
			return h, size, 0, nil
		}
		// Copy and hash what was copied: the file may change under us.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", 0, 0, err
		}
		err = objects.ReplaceFile(h, 0o444, func(tmp *os.File) error {
			hw := sha256.New()
			n, err := io.Copy(io.MultiWriter(tmp, hw), io.LimitReader(f, max+1))
			if err != nil {
				return err
			}
			if n != size || hex.EncodeToString(hw.Sum(nil)) != h {
				return errChanging
			}
			return tmp.Sync()
		})
		if errors.Is(err, errChanging) {
			continue
		}
		if err != nil {
			return "", 0, 0, fmt.Errorf("store object: %w", err)
		}
		return h, size, size, nil
	}
	return "", 0, 0, errChanging
}

func hashReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
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
	b, err := readManifest(workspace, id)
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

// maxManifest bounds what is read of a manifest (a forged one could be a
// huge file).
const maxManifest = 256 << 20

// readManifest reads the manifest file of id, a regular file reached
// without following symlinks.
func readManifest(workspace, id string) ([]byte, error) {
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, _, err := root.Open(manifestsRel + "/" + id + ".json")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("larger than %d MiB", maxManifest>>20)
	}
	return b, nil
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
// excluded paths are left alone. Every object is checked (present, and its
// content's sha256 equal to its name) before anything changes, so a damaged
// or forged store fails the restore without touching files; each is
// checked again as it is copied. No path is read, written or created
// through a symlink: an entry below one fails the restore.
func (s *Snapshotter) Restore(id string) (*RestoreStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	man, err := LoadManifest(s.Workspace, id)
	if err != nil {
		return nil, err
	}
	short := id[:12]
	root, err := nofollow.OpenRoot(s.Workspace)
	if err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: %w", short, err)
	}
	defer root.Close()
	// The store lives in the workspace, where sandbox code can write: a
	// manifest and the objects are checked like untrusted input before
	// anything changes.
	objects, err := openStoreDir(root, objectsRel, false)
	if err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: %w", short, err)
	}
	defer objects.Close()
	verified := map[string]bool{}
	for _, f := range man.Files {
		if !fs.ValidPath(f.Path) || f.Path == "." || s.excluded(f.Path) {
			return nil, fmt.Errorf("workspace snapshot %s: bad path %q", short, f.Path)
		}
		if f.Type != "file" {
			continue
		}
		if !isHash(f.Hash) {
			return nil, fmt.Errorf("workspace snapshot %s: bad content id %q for %s", short, f.Hash, f.Path)
		}
		if verified[f.Hash] {
			continue
		}
		if err := verifyObject(objects, f.Hash, f.Size); err != nil {
			return nil, fmt.Errorf("workspace snapshot %s: content of %s: %w; nothing was changed", short, f.Path, err)
		}
		verified[f.Hash] = true
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
	err = root.Walk(func(rel string, info fs.FileInfo, _ *nofollow.Dir, err error) error {
		if s.excluded(rel) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err != nil {
			return nil // a directory that cannot be listed: its contents stay
		}
		typ := "other"
		switch {
		case info.IsDir():
			typ = "dir"
		case info.Mode()&fs.ModeSymlink != 0:
			typ = "symlink"
		case info.Mode().IsRegular():
			typ = "file"
		}
		now = append(now, have{rel, typ})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workspace snapshot %s: list the workspace (nothing was changed): %w", short, err)
	}
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
		if h.typ == "dir" && !ok {
			if root.Remove(h.rel) == nil { // not empty: holds a skipped file
				rs.Removed++
			}
			continue
		}
		if err := root.RemoveAll(h.rel); err != nil {
			return rs, restoreErr(h.rel, err)
		}
		rs.Removed++
	}
	for _, f := range man.Files { // sorted: parents before children
		mode := fs.FileMode(f.Mode).Perm()
		switch f.Type {
		case "dir":
			if err := root.MkdirAll(f.Path, 0o755); err != nil {
				return rs, restoreErr(f.Path, err)
			}
			d, err := root.OpenDir(f.Path)
			if errors.Is(err, fs.ErrPermission) {
				continue // not readable by us (another user's): exists, mode left
			}
			if err != nil {
				return rs, restoreErr(f.Path, err)
			}
			err = d.Chmod(mode | 0o700)
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			if err != nil && !errors.Is(err, fs.ErrPermission) { // owned by another user: the mode stays
				return rs, restoreErr(f.Path, err)
			}
		case "symlink":
			if t, err := root.Readlink(f.Path); err == nil && t == f.Target {
				rs.Unchanged++
				continue
			}
			if err := root.RemoveAll(f.Path); err != nil {
				return rs, restoreErr(f.Path, err)
			}
			if err := root.Symlink(f.Target, f.Path); err != nil {
				return rs, restoreErr(f.Path, err)
			}
			rs.Written++
		case "file":
			same, err := sameFile(root, f, mode)
			if err != nil {
				return rs, restoreErr(f.Path, err)
			}
			if same {
				rs.Unchanged++
				continue
			}
			if err := copyObject(root, objects, f, mode); err != nil {
				return rs, restoreErr(f.Path, err)
			}
			rs.Written++
		}
	}
	s.cache = nil // mtimes changed
	return rs, nil
}

// restoreErr says why path was not restored, in the workspace's terms.
func restoreErr(path string, err error) error {
	if errors.Is(err, nofollow.ErrSymlink) {
		return fmt.Errorf("restore %s: a symlink is on its path and could lead out of the workspace: not restored (%w)", path, err)
	}
	return fmt.Errorf("restore %s: %w", path, err)
}

// verifyObject checks that object h is a regular file in the store of the
// given size whose sha256 is h.
func verifyObject(objects *nofollow.Dir, h string, size int64) error {
	f, fi, err := objects.Open(h)
	if err != nil {
		return fmt.Errorf("object %s is missing from the store or unusable: %w", h, err)
	}
	defer f.Close()
	if fi.Size() != size {
		return fmt.Errorf("object %s in the store has %d bytes, the snapshot recorded %d: the store was damaged or tampered with", h, fi.Size(), size)
	}
	got, _, err := hashReader(f)
	if err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	if got != h {
		return fmt.Errorf("object %s in the store does not match its id (its content hashes to %s): the store was damaged or tampered with", h, got)
	}
	return nil
}

// sameFile reports whether the workspace already holds f (a regular file
// with its content), setting its mode if so.
func sameFile(root *nofollow.Dir, f FileEntry, mode fs.FileMode) (bool, error) {
	cur, fi, err := root.Open(f.Path)
	if err != nil {
		return false, nil // missing, a symlink or something else: replaced
	}
	defer cur.Close()
	if fi.Size() != f.Size {
		return false, nil
	}
	if h, _, err := hashReader(cur); err != nil || h != f.Hash {
		return false, nil
	}
	if err := cur.Chmod(mode); err != nil && !errors.Is(err, fs.ErrPermission) { // another user's file: the mode stays
		return false, err
	}
	return true, nil
}

// copyObject writes f's content from the store into the workspace, into a
// new file renamed over whatever is at f.Path (never written through), and
// checks the content's hash once more as it copies.
func copyObject(root, objects *nofollow.Dir, f FileEntry, mode fs.FileMode) error {
	if dir := path.Dir(f.Path); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	in, _, err := objects.Open(f.Hash)
	if err != nil {
		return fmt.Errorf("object %s: %w", f.Hash, err)
	}
	defer in.Close()
	if fi, err := root.Lstat(f.Path); err == nil && fi.IsDir() {
		if err := root.RemoveAll(f.Path); err != nil {
			return err
		}
	}
	return root.ReplaceFile(f.Path, mode, func(out *os.File) error {
		hw := sha256.New()
		if _, err := io.Copy(io.MultiWriter(out, hw), in); err != nil {
			return err
		}
		if got := hex.EncodeToString(hw.Sum(nil)); got != f.Hash {
			return fmt.Errorf("object %s in the store does not match its id (changed while restored, to content hashing to %s)", f.Hash, got)
		}
		return out.Sync()
	})
}

// isHash reports whether h is a sha256 in lower-case hex, as object names are.
func isHash(h string) bool {
	return len(h) == 64 && strings.Trim(h, "0123456789abcdef") == ""
}
