package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// The workspace is a tmpfs inside the VM, kept in step with the host
// directory over the agent channel: host changes are pushed before each
// execution, guest changes pulled right after it, so files written in the
// sandbox are on the host when Execute returns. (The Debian cloud kernel
// has no 9p, and virtio-fs would block snapshots: vhost-user devices are
// not migratable.) Symlinks are never followed on either side: the host
// side reads and writes the workspace only through sdk/nofollow, relative to
// directory fds and without resolving any symlink, so neither the guest nor
// another session swapping a workspace entry for a symlink between the
// listing and the open can make the host copy a file from outside the
// workspace into the VM, or write one outside it.

// hostState is what the syncer last knew of a host entry. A directory's
// size and mtime are left out: its children are tracked themselves.
type hostState struct {
	size  int64
	mtime int64
	ino   uint64
	dir   bool
}

func stateOf(fi fs.FileInfo) hostState {
	if fi.IsDir() {
		return hostState{ino: nofollow.Ino(fi), dir: true}
	}
	return hostState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: nofollow.Ino(fi)}
}

// cost is what an entry counts against max_workspace.
func (h hostState) cost() int64 {
	if h.dir {
		return 4096
	}
	return h.size
}

// syncStats counts what the last push or pull touched (tests and the
// benchmark read them): entries whose state was looked at, files sent or
// copied back, paths removed.
type syncStats struct {
	Examined, Sent, Removed, Pulled int
	// Lazy counts the files of Sent that go in the background.
	Lazy int
}

// syncer mirrors one host directory into a guest tree.
type syncer struct {
	dir  string
	tree string
	// prefix places the tree's files below a guest directory (lib mounts).
	prefix string
	max    int64
	known  map[string]hostState
	total  int64 // the cost of known
	// watch: track changes with inotify (the workspace, pushed before
	// every execution; libraries are pushed once per VM and scanned).
	watch   bool
	w       *watch.Set
	noWatch bool // inotify failed: every push scans
	full    bool // the next push scans everything
	// lazy: large files go in the background (the workspace; libraries
	// must be complete when sealed). noLazy: the guest cannot.
	lazy, noLazy bool
	fill         *filler
	log          hclog.Logger

	pushStats, pullStats syncStats
}

func newSyncer(dir, tree string, max int64) *syncer {
	return &syncer{dir: dir, tree: tree, max: max, known: map[string]hostState{}, full: true, log: hclog.NewNullLogger()}
}

func (s *syncer) guest(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}

// reset forgets what the guest holds (a fresh or restored VM).
func (s *syncer) reset() {
	s.known, s.total, s.full, s.noLazy = map[string]hostState{}, 0, true, false
	s.fill.stopIfAny()
	s.fill = nil
}

// close releases the change tracking and stops background transfers.
func (s *syncer) close() {
	s.w.Close()
	s.w = nil
	s.fill.stopIfAny()
}

// settled is closed when no background transfer is queued or running.
func (s *syncer) settled() <-chan struct{} {
	if s.fill == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.fill.done()
}

func (s *syncer) setKnown(rel string, st hostState) {
	if old, ok := s.known[rel]; ok {
		s.total -= old.cost()
	}
	s.known[rel] = st
	s.total += st.cost()
}

// forgetKnown drops rel and everything below it.
func (s *syncer) forgetKnown(rel string) {
	for k, st := range s.known {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			s.total -= st.cost()
			delete(s.known, k)
		}
	}
}

// pull copies what the guest changed into the host directory.
func (s *syncer) pull(ctx context.Context, a *agentClient) error {
	if s.dir == "" {
		return nil
	}
	s.pullStats = syncStats{}
	r, err := a.call(ctx, &proto.Msg{Op: proto.OpScan})
	if err != nil {
		return err
	}
	s.pullStats.Examined = r.Examined
	if len(r.Changed) == 0 && len(r.Deleted) == 0 {
		return nil
	}
	root, err := nofollow.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	sort.Strings(r.Deleted)
	for _, rel := range r.Deleted {
		if !validRel(rel) {
			continue
		}
		if err := root.RemoveAll(rel); err != nil {
			return fmt.Errorf("remove %s from the workspace: %w", rel, err)
		}
		s.forgetKnown(rel)
		s.pullStats.Removed++
	}
	pre, err := s.prefetch(ctx, a, r.Changed)
	if err != nil {
		return err
	}
	var total int64
	// Paths with a symlink on the host where the guest has a directory are
	// not copied back (the link is not followed); the others still are.
	var refused []string
	for _, e := range r.Changed {
		if !validRel(e.Path) {
			continue
		}
		var err error
		kind := "dir"
		if e.Dir {
			err = root.MkdirAll(e.Path, 0o755)
		} else {
			kind = "file"
			total += e.Size
			if total > s.max {
				return fmt.Errorf("the sandbox wrote more than max_workspace (%d MiB); %s and later files were not copied back", s.max>>20, e.Path)
			}
			err = s.pullFile(ctx, a, root, e, pre[e.Path])
		}
		if errors.Is(err, nofollow.ErrSymlink) {
			refused = append(refused, e.Path)
			continue
		}
		if err != nil {
			return fmt.Errorf("workspace %s %s: %w", kind, e.Path, err)
		}
		if fi, err := root.Lstat(e.Path); err == nil {
			s.setKnown(e.Path, stateOf(fi))
		}
		if !e.Dir {
			s.pullStats.Pulled++
		}
	}
	s.settle(root)
	if len(refused) > 0 {
		return fmt.Errorf("not copied back, because a symlink in the host workspace is on their path (symlinks are not followed): %s", strings.Join(refused, ", "))
	}
	return nil
}

// prefetch reads the small changed files in batches (one round trip for
// hundreds of files instead of one each); the map holds those read whole.
func (s *syncer) prefetch(ctx context.Context, a *agentClient, changed []proto.Entry) (map[string][]byte, error) {
	out := map[string][]byte{}
	var batch []proto.File
	size := int64(0)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		r, err := a.call(ctx, &proto.Msg{Op: proto.OpReadBatch, Tree: s.tree, Files: batch})
		if err != nil {
			return err
		}
		for _, f := range r.Files {
			if f.Data == nil {
				f.Data = []byte{}
			}
			out[f.Path] = f.Data
		}
		batch, size = nil, 0
		return nil
	}
	for _, e := range changed {
		if e.Dir || e.Size > smallFile || !validRel(e.Path) {
			continue
		}
		batch = append(batch, proto.File{Path: e.Path})
		if size += e.Size; size >= batchBytes || len(batch) >= batchFiles {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return out, flush()
}

// errGuestGone: the guest deleted a file while it was being copied back.
var errGuestGone = errors.New("deleted in the guest meanwhile")

// pullFile copies the guest file e into the workspace: into a new file
// renamed over whatever is at its path (a symlink or hard link there is
// replaced, never written through).
func (s *syncer) pullFile(ctx context.Context, a *agentClient, root *nofollow.Dir, e proto.Entry, data []byte) error {
	if d := path.Dir(e.Path); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if fi, err := root.Lstat(e.Path); err == nil && fi.IsDir() {
		// A directory becomes a file: rename cannot replace it.
		if err := root.Remove(e.Path); err != nil {
			return err
		}
	}
	err := root.ReplaceFile(e.Path, fs.FileMode(e.Mode).Perm()|0o600, func(f *os.File) error {
		if data != nil {
			_, err := f.Write(data)
			return err
		}
		var off int64
		for {
			r, err := a.call(ctx, &proto.Msg{Op: proto.OpRead, Tree: s.tree, Path: e.Path, Offset: off, Length: chunk})
			if err != nil {
				if strings.Contains(err.Error(), "no such file") {
					return errGuestGone
				}
				return err
			}
			if _, err := f.Write(r.Data); err != nil {
				return err
			}
			off += int64(len(r.Data))
			if r.EOF || len(r.Data) == 0 {
				return nil
			}
		}
	})
	if errors.Is(err, errGuestGone) {
		return nil
	}
	return err
}

func validRel(rel string) bool {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\x00") {
		return false
	}
	return path.Clean(rel) == rel && rel != ".." && !strings.HasPrefix(rel, "../")
}

// limitGuest bounds the guest's copy of the workspace by what the host's
// file system has left, so code that fills it gets ENOSPC in the guest
// rather than a failed copy back after it ran.
func (s *syncer) limitGuest(ctx context.Context, a *agentClient) error {
	if s.dir == "" {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", s.dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if _, err := a.call(ctx, &proto.Msg{Op: proto.OpQuota, Tree: proto.TreeWorkspace, Length: free, Offset: int64(st.Ffree)}); err != nil {
		return fmt.Errorf("workspace quota: %w", err)
	}
	return nil
}
