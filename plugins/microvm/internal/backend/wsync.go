package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// The workspace is a tmpfs inside the VM, kept in step with the host
// directory over the agent channel: host changes are pushed before each
// execution, guest changes pulled right after it, so files written in the
// sandbox are on the host when Execute returns. (The Debian cloud kernel
// has no 9p, and virtio-fs would block snapshots: vhost-user devices are
// not migratable.) Symlinks are never followed on either side, and host
// writes go through os.Root, so a guest cannot write outside the workspace.

// chunk is the largest file piece sent in one control message.
const chunk = 4 << 20

// hostState is what the syncer last knew of a host entry.
type hostState struct {
	size  int64
	mtime int64
	dir   bool
}

// syncer mirrors one host directory into a guest tree.
type syncer struct {
	dir  string
	tree string
	// prefix places the tree's files below a guest directory (lib mounts).
	prefix string
	max    int64
	known  map[string]hostState
}

func newSyncer(dir, tree string, max int64) *syncer {
	return &syncer{dir: dir, tree: tree, max: max, known: map[string]hostState{}}
}

func (s *syncer) guest(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}

// reset forgets what the guest holds (a fresh or restored VM).
func (s *syncer) reset() { s.known = map[string]hostState{} }

// push sends host entries that are new or changed since the last sync and
// removes in the guest what vanished on the host.
func (s *syncer) push(ctx context.Context, a *agentClient) error {
	if s.dir == "" {
		return nil
	}
	seen := map[string]bool{}
	var total int64
	var files, dirs []string
	cur := map[string]hostState{}
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.dir {
				return err
			}
			return nil
		}
		if p == s.dir {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, s.dir+string(filepath.Separator)))
		if sdk.HostOwned(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		t := d.Type()
		if !t.IsRegular() && !t.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := hostState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dir: t.IsDir()}
		seen[rel] = true
		cur[rel] = st
		if st.dir {
			total += 4096
		} else {
			total += st.size
		}
		if old, ok := s.known[rel]; ok && old == st {
			return nil
		}
		if st.dir {
			dirs = append(dirs, rel)
		} else {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read workspace %s: %w", s.dir, err)
	}
	if total > s.max {
		return fmt.Errorf("workspace %s holds %d MiB, more than max_workspace (%d MiB)", s.dir, total>>20, s.max>>20)
	}
	var gone []string
	for rel := range s.known {
		if !seen[rel] {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	for _, rel := range gone {
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpRemove, Tree: s.tree, Path: s.guest(rel)}); err != nil {
			return err
		}
		delete(s.known, rel)
	}
	sort.Strings(dirs)
	for _, rel := range dirs {
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpMkdir, Tree: s.tree, Path: s.guest(rel), Mode: 0o777}); err != nil {
			return err
		}
		s.known[rel] = cur[rel]
	}
	for _, rel := range files {
		if err := s.pushFile(ctx, a, rel); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed on the host since the walk: the next push notices
			}
			return err
		}
		s.known[rel] = cur[rel]
	}
	return nil
}

func (s *syncer) pushFile(ctx context.Context, a *agentClient, rel string) error {
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Errorf("workspace file %s: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, min(chunk, max(fi.Size(), 1)))
	var off int64
	for {
		n, rerr := io.ReadFull(f, buf)
		final := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !final {
			return fmt.Errorf("workspace file %s: %w", rel, rerr)
		}
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpWrite, Tree: s.tree, Path: s.guest(rel), Offset: off, Data: buf[:n], Final: final, Mode: uint32(fi.Mode().Perm())}); err != nil {
			return err
		}
		off += int64(n)
		if final {
			return nil
		}
	}
}

// pull copies what the guest changed into the host directory.
func (s *syncer) pull(ctx context.Context, a *agentClient) error {
	if s.dir == "" {
		return nil
	}
	r, err := a.call(ctx, &proto.Msg{Op: proto.OpScan})
	if err != nil {
		return err
	}
	if len(r.Changed) == 0 && len(r.Deleted) == 0 {
		return nil
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	sort.Strings(r.Deleted)
	for _, rel := range r.Deleted {
		if !validRel(rel) {
			continue
		}
		if err := root.RemoveAll(filepath.FromSlash(rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s from the workspace: %w", rel, err)
		}
		for k := range s.known {
			if k == rel || strings.HasPrefix(k, rel+"/") {
				delete(s.known, k)
			}
		}
	}
	var total int64
	for _, e := range r.Changed {
		if !validRel(e.Path) {
			continue
		}
		p := filepath.FromSlash(e.Path)
		if e.Dir {
			if err := root.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("workspace dir %s: %w", e.Path, err)
			}
		} else {
			total += e.Size
			if total > s.max {
				return fmt.Errorf("the sandbox wrote more than max_workspace (%d MiB); %s and later files were not copied back", s.max>>20, e.Path)
			}
			if err := s.pullFile(ctx, a, root, e); err != nil {
				return err
			}
		}
		if fi, err := root.Lstat(p); err == nil {
			s.known[e.Path] = hostState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dir: fi.IsDir()}
		}
	}
	return nil
}

func (s *syncer) pullFile(ctx context.Context, a *agentClient, root *os.Root, e proto.Entry) error {
	p := filepath.FromSlash(e.Path)
	if d := filepath.Dir(p); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("workspace dir %s: %w", d, err)
		}
	}
	// Replace, never write through: an existing symlink is not followed.
	_ = root.Remove(p)
	f, err := root.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fs.FileMode(e.Mode).Perm()|0o600)
	if err != nil {
		return fmt.Errorf("workspace file %s: %w", e.Path, err)
	}
	defer f.Close()
	var off int64
	for {
		r, err := a.call(ctx, &proto.Msg{Op: proto.OpRead, Tree: s.tree, Path: e.Path, Offset: off, Length: chunk})
		if err != nil {
			if strings.Contains(err.Error(), "no such file") {
				return nil // deleted in the guest meanwhile
			}
			return err
		}
		if _, err := f.Write(r.Data); err != nil {
			return fmt.Errorf("workspace file %s: %w", e.Path, err)
		}
		off += int64(len(r.Data))
		if r.EOF || len(r.Data) == 0 {
			return f.Close()
		}
	}
}

func validRel(rel string) bool {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\x00") {
		return false
	}
	return path.Clean(rel) == rel && rel != ".." && !strings.HasPrefix(rel, "../")
}
