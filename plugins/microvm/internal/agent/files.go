package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
)

// fileState is what the agent remembers of a workspace entry, to report
// only what changed since the host last saw it.
type fileState struct {
	size  int64
	mtime int64
	mode  fs.FileMode
}

// files serves the host's file operations on the guest's scratch trees.
type files struct {
	mu       sync.Mutex
	manifest map[string]fileState
	// w reports which workspace paths may have changed since the last
	// scan (nil: no watch could be made, every scan walks the tree).
	w       changes
	noWatch bool
	full    bool // the next scan walks the whole tree
	lazy    *lazyFiles
	// baseline, when set, is closed once the read of a workspace
	// image's manifest has filled base, which then goes into manifest
	// (awaitBaseline). readBase, until it is started (kickBaseline),
	// is that read.
	baseline chan struct{}
	base     map[string]fileState
	readBase func(map[string]fileState)
	// retired holds the boot workspace's file system after an image
	// took its place, until the first scan (retireOld).
	retired *os.File
}

// awaitBaseline waits for the workspace image's manifest, if one is being
// read, and takes it in. Called with mu held, before manifest is used.
func (f *files) awaitBaseline() {
	if f.baseline == nil {
		return
	}
	if read := f.readBase; read != nil {
		// Needed before it started: read it here, at full priority.
		f.readBase = nil
		read(f.base)
		close(f.baseline)
	}
	<-f.baseline
	for rel, st := range f.base {
		f.manifest[rel] = st
	}
	f.baseline, f.base = nil, nil
}

// changes says which workspace paths may have changed since it was last
// drained: a watch.FS (one fanotify mark on the workspace's file system,
// whatever its size) where the kernel and the file system allow, else a
// watch.Set (inotify, one watch per directory, added as they are walked).
type changes interface {
	Add(path, rel string) error
	Watched(rel string) bool
	Forget(rel string)
	Drain() (dirty map[string]bool, lost bool, err error)
	Close()
}

// watchWorkspace starts tracking the workspace's changes.
func watchWorkspace() (changes, error) {
	fsw, err := watch.NewFS(workspaceDir)
	if err == nil {
		return fsw, nil
	}
	w, werr := watch.New()
	if werr != nil {
		return nil, fmt.Errorf("%w (and %v)", werr, err)
	}
	logf("workspace watched per directory (inotify): %v", err)
	return w, nil
}

func newFiles() *files {
	return &files{manifest: map[string]fileState{}, full: true, lazy: newLazyFiles()}
}

func treeRoot(tree string) (string, error) {
	switch tree {
	case proto.TreeWorkspace, "":
		return workspaceDir, nil
	case proto.TreeLib:
		return libDir, nil
	}
	return "", fmt.Errorf("unknown tree %q", tree)
}

// resolve maps a slash-separated relative path into a tree, refusing paths
// that climb out of it.
func resolve(tree, rel string) (string, error) {
	root, err := treeRoot(tree)
	if err != nil {
		return "", err
	}
	clean := filepath.Clean("/" + rel)
	if clean == "/" || strings.Contains(rel, "\x00") {
		return "", fmt.Errorf("bad path %q", rel)
	}
	return root + clean, nil
}

func stateOf(fi fs.FileInfo) fileState {
	return fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}

// scanResult is what a scan reports to the host.
type scanResult struct {
	changed  []proto.Entry
	deleted  []string
	examined int
}

// scan reports workspace entries added or modified since the last scan or
// host write, and entries that disappeared. It looks only at the paths
// inotify reported (and into new directories); after a wipe, or when the
// event queue overflowed, it walks the tree.
func (f *files) scan() (*scanResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// After the session's first execution (this scan follows it), the
	// background work of its attach begins.
	defer f.kickBaseline()
	defer f.retireOld()
	if f.w == nil && !f.noWatch {
		w, err := watchWorkspace()
		if err != nil {
			f.noWatch = true
			logf("workspace changes not tracked, every scan walks it: %v", err)
		} else {
			f.w, f.full = w, true
		}
	}
	res := &scanResult{}
	if f.w != nil {
		dirty, lost, err := f.w.Drain()
		if err == nil && !lost && !f.full {
			if len(dirty) == 0 {
				return res, nil // nothing to compare: no need of the baseline
			}
			f.awaitBaseline()
			return res, f.scanDirty(dirty, res)
		}
		f.w.Forget("")
	}
	f.awaitBaseline()
	seen, err := f.walk("", res)
	if err != nil {
		return nil, err
	}
	for rel := range f.manifest {
		if !seen[rel] {
			res.deleted = append(res.deleted, rel)
			delete(f.manifest, rel)
		}
	}
	f.full = false
	return res, nil
}

// scanDirty examines the paths inotify reported.
func (f *files) scanDirty(dirty map[string]bool, res *scanResult) error {
	rels := make([]string, 0, len(dirty))
	for rel := range dirty {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		res.examined++
		fi, err := os.Lstat(filepath.Join(workspaceDir, rel))
		old, known := f.manifest[rel]
		if err != nil || (!fi.Mode().IsRegular() && !fi.IsDir()) {
			// Gone, or now a symlink, fifo or socket (those stay in the guest).
			if f.forget(rel) {
				res.deleted = append(res.deleted, rel)
			}
			f.w.Forget(rel)
			continue
		}
		if fi.IsDir() {
			if known && old.mode.IsDir() && f.w.Watched(rel) {
				continue // its children report their own changes
			}
			if known && !old.mode.IsDir() {
				f.forget(rel)
				res.deleted = append(res.deleted, rel)
			}
			seen, err := f.walk(rel, res)
			if err != nil {
				return err
			}
			for k := range f.manifest {
				if strings.HasPrefix(k, rel+"/") && !seen[k] {
					res.deleted = append(res.deleted, k)
					delete(f.manifest, k)
				}
			}
			continue
		}
		if f.lazy.pending(inoOf(fi)) {
			continue // the host's content, still arriving
		}
		if known && old.mode.IsDir() {
			f.forget(rel)
			f.w.Forget(rel)
			res.deleted = append(res.deleted, rel)
		}
		f.note(rel, fi, res)
	}
	return nil
}

// forget drops rel and what is below it from the manifest, reporting
// whether the host knew any of it.
func (f *files) forget(rel string) bool {
	had := false
	for k := range f.manifest {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			delete(f.manifest, k)
			had = true
		}
	}
	return had
}

// note reports rel if the host does not have it as it is, and records it.
func (f *files) note(rel string, fi fs.FileInfo, res *scanResult) {
	st := stateOf(fi)
	old, ok := f.manifest[rel]
	f.manifest[rel] = st
	if fi.IsDir() {
		if !ok || !old.mode.IsDir() {
			res.changed = append(res.changed, proto.Entry{Path: rel, Mode: uint32(fi.Mode().Perm()), Dir: true})
		}
		return
	}
	if !ok || old != st {
		res.changed = append(res.changed, proto.Entry{Path: rel, Size: st.size, Mode: uint32(fi.Mode().Perm())})
	}
}

// walk goes through the directory at prefix ("" for the workspace),
// watching each directory before it is listed, and notes every entry.
func (f *files) walk(prefix string, res *scanResult) (map[string]bool, error) {
	start := workspaceDir
	if prefix != "" {
		start = filepath.Join(workspaceDir, prefix)
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil {
			if errors.Is(werr, fs.ErrNotExist) {
				return nil
			}
			return werr
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, workspaceDir), "/")
		if d.IsDir() && f.w != nil {
			if err := f.w.Add(p, rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
				logf("watch %s: %v", p, err)
			}
		}
		if p == workspaceDir {
			return nil
		}
		res.examined++
		t := d.Type()
		if !t.IsRegular() && !t.IsDir() {
			return nil // symlinks, fifos, sockets stay in the guest
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		seen[rel] = true
		if !fi.IsDir() && f.lazy.pending(inoOf(fi)) {
			return nil // the host's content, still arriving
		}
		f.note(rel, fi, res)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan workspace: %w", err)
	}
	return seen, nil
}

func (f *files) read(m *proto.Msg) (*proto.Msg, error) {
	p, err := resolve(m.Tree, m.Path)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	n := m.Length
	if n <= 0 || n > 8<<20 {
		n = 8 << 20
	}
	buf := make([]byte, n)
	got, err := fh.ReadAt(buf, m.Offset)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return &proto.Msg{Data: buf[:got], EOF: err == io.EOF || int64(got) < n}, nil
}

func (f *files) write(m *proto.Msg) error {
	p, err := resolve(m.Tree, m.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE
	if m.Offset == 0 {
		flags |= os.O_TRUNC
	}
	fh, err := os.OpenFile(p, flags, 0o666)
	if err != nil {
		return err
	}
	if _, err := fh.WriteAt(m.Data, m.Offset); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	if m.Final {
		if m.Length > 0 {
			// The host skipped holes: the file ends where the host's does.
			if err := os.Truncate(p, m.Length); err != nil {
				return err
			}
		}
		if m.Mode != 0 {
			_ = os.Chmod(p, fs.FileMode(m.Mode).Perm())
		}
		f.remember(m.Tree, m.Path, p)
	}
	return nil
}

// batchReadMax is the largest file a read_batch reply carries.
const batchReadMax = 256 << 10

// readBatch reads whole small files; those gone or too large are left out.
func (f *files) readBatch(m *proto.Msg) (*proto.Msg, error) {
	r := &proto.Msg{}
	for _, file := range m.Files {
		p, err := resolve(m.Tree, file.Path)
		if err != nil {
			return nil, err
		}
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := fh.Stat()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > batchReadMax {
			fh.Close()
			continue
		}
		data := make([]byte, fi.Size()+1)
		n, err := io.ReadFull(fh, data)
		fh.Close()
		if n > int(fi.Size()) || (err != nil && err != io.ErrUnexpectedEOF && err != io.EOF) {
			continue // grew while read: read alone
		}
		r.Files = append(r.Files, proto.File{Path: file.Path, Mode: uint32(fi.Mode().Perm()), Data: data[:n]})
	}
	return r, nil
}

// writeBatch writes whole small files.
func (f *files) writeBatch(m *proto.Msg) error {
	for _, file := range m.Files {
		if err := f.write(&proto.Msg{Tree: m.Tree, Path: file.Path, Data: file.Data, Final: true, Mode: file.Mode}); err != nil {
			return fmt.Errorf("%s: %w", file.Path, err)
		}
	}
	return nil
}

func (f *files) mkdir(m *proto.Msg) error {
	p, err := resolve(m.Tree, m.Path)
	if err != nil {
		return err
	}
	mode := fs.FileMode(m.Mode).Perm()
	if mode == 0 {
		mode = 0o777
	}
	if err := os.MkdirAll(p, mode); err != nil {
		return err
	}
	f.remember(m.Tree, m.Path, p)
	return nil
}

func (f *files) remove(m *proto.Msg) error {
	p, err := resolve(m.Tree, m.Path)
	if err != nil {
		return err
	}
	if m.Tree == proto.TreeWorkspace || m.Tree == "" {
		f.lazy.abortUnder(strings.Trim(filepath.Clean("/"+m.Path), "/"))
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if m.Tree == proto.TreeWorkspace || m.Tree == "" {
		f.mu.Lock()
		f.awaitBaseline()
		rel := strings.Trim(filepath.Clean("/"+m.Path), "/")
		for k := range f.manifest {
			if k == rel || strings.HasPrefix(k, rel+"/") {
				delete(f.manifest, k)
			}
		}
		f.mu.Unlock()
	}
	return nil
}

// wipe empties the workspace and the libraries (a restored VM takes both
// from the host, for its new session).
func (f *files) wipe() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.awaitBaseline()
	f.lazy.abortUnder("")
	unsealLib()
	for _, dir := range []string{workspaceDir, libDir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	f.manifest = map[string]fileState{}
	f.full = true
	return nil
}

func (f *files) remember(tree, rel, p string) {
	if tree != proto.TreeWorkspace && tree != "" {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.awaitBaseline()
	rel = strings.Trim(filepath.Clean("/"+rel), "/")
	f.manifest[rel] = stateOf(fi)
	// Parent directories the write created are known to the host too.
	for d := filepath.Dir(rel); d != "." && d != "/"; d = filepath.Dir(d) {
		if _, ok := f.manifest[d]; ok {
			break
		}
		if dfi, err := os.Lstat(filepath.Join(workspaceDir, d)); err == nil {
			f.manifest[d] = stateOf(dfi)
		}
	}
}
