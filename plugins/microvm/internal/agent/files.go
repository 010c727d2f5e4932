package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
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
}

func newFiles() *files { return &files{manifest: map[string]fileState{}} }

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

// scan walks the workspace and reports entries added or modified since the
// last scan or host write, and entries that disappeared.
func (f *files) scan() (changed []proto.Entry, deleted []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]fileState{}
	err = filepath.WalkDir(workspaceDir, func(p string, d fs.DirEntry, werr error) error {
		if werr != nil {
			if errors.Is(werr, fs.ErrNotExist) {
				return nil
			}
			return werr
		}
		if p == workspaceDir {
			return nil
		}
		t := d.Type()
		if !t.IsRegular() && !t.IsDir() {
			return nil // symlinks, fifos, sockets stay in the guest
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel := strings.TrimPrefix(p, workspaceDir+"/")
		st := stateOf(fi)
		seen[rel] = st
		old, ok := f.manifest[rel]
		if t.IsDir() {
			if !ok || !old.mode.IsDir() {
				changed = append(changed, proto.Entry{Path: rel, Mode: uint32(fi.Mode().Perm()), Dir: true})
			}
			return nil
		}
		if !ok || old.size != st.size || old.mtime != st.mtime || old.mode != st.mode {
			changed = append(changed, proto.Entry{Path: rel, Size: st.size, Mode: uint32(fi.Mode().Perm())})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan workspace: %w", err)
	}
	for rel := range f.manifest {
		if _, ok := seen[rel]; !ok {
			deleted = append(deleted, rel)
		}
	}
	f.manifest = seen
	return changed, deleted, nil
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
		if m.Mode != 0 {
			_ = os.Chmod(p, fs.FileMode(m.Mode).Perm())
		}
		f.remember(m.Tree, m.Path, p)
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
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if m.Tree == proto.TreeWorkspace || m.Tree == "" {
		f.mu.Lock()
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
