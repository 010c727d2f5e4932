package backend

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// plan is what one push sends: paths to remove in the guest (each with
// what is below it), directories to create and files to send, with the
// host state to record once they are there.
type plan struct {
	cur   map[string]hostState
	gone  map[string]bool
	dirs  []string
	files []string
}

func newPlan() *plan { return &plan{cur: map[string]hostState{}, gone: map[string]bool{}} }

// push sends host entries that are new or changed since the last sync and
// removes in the guest what vanished on the host. With change tracking it
// looks only at the paths inotify reported since the last push (and into
// directories that are new); otherwise, and after a reset or a lost event
// queue, it walks the whole workspace. Unchanged files are never read.
func (s *syncer) push(ctx context.Context, a *agentClient) error {
	if s.dir == "" {
		return nil
	}
	root, err := nofollow.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("read workspace %s: %w", s.dir, err)
	}
	defer root.Close()
	s.pushStats = syncStats{}
	if s.watch && s.w == nil && !s.noWatch {
		w, err := watch.New()
		if err != nil {
			s.noWatch = true
			s.log.Warn("workspace changes not tracked: every execution scans it", "dir", s.dir, "error", err)
		} else {
			s.w, s.full = w, true
		}
	}
	p := newPlan()
	scanned := false
	if s.w != nil {
		dirty, lost, err := s.w.Drain()
		if err != nil || lost {
			s.full = true
		}
		if !s.full {
			rels := make([]string, 0, len(dirty))
			for rel := range dirty {
				rels = append(rels, rel)
			}
			sort.Strings(rels)
			for _, rel := range rels {
				if err := s.examine(root, rel, p); err != nil {
					return err
				}
			}
			scanned = true
		}
	}
	if !scanned {
		if s.w != nil {
			s.w.Forget("")
		}
		if err := s.scanTree(root, "", p); err != nil {
			return err
		}
	}
	// Until this push is complete, the next one scans everything: the
	// events it consumed are gone.
	s.full = true
	if err := s.apply(ctx, a, root, p); err != nil {
		return err
	}
	s.full = false
	return nil
}

// note records rel's current state in p if the guest does not have it.
func (s *syncer) note(p *plan, rel string, st hostState) {
	if _, dup := p.cur[rel]; dup {
		return
	}
	old, ok := s.known[rel]
	if ok && old == st {
		return
	}
	if ok && old.dir != st.dir {
		p.gone[rel] = true // a file became a directory or the other way round
	}
	p.cur[rel] = st
	if st.dir {
		p.dirs = append(p.dirs, rel)
	} else {
		p.files = append(p.files, rel)
	}
}

// examine looks at one path inotify reported.
func (s *syncer) examine(root *nofollow.Dir, rel string, p *plan) error {
	s.pushStats.Examined++
	fi, err := root.Lstat(rel)
	present := err == nil && !sdk.HostOwned(rel) && (fi.Mode().IsRegular() || fi.IsDir())
	if !present {
		// Removed, or replaced by what is not copied (a symlink, a fifo),
		// or below a directory that became a symlink.
		if s.knowsBelow(rel) {
			p.gone[rel] = true
		}
		s.w.Forget(rel)
		return nil
	}
	st := stateOf(fi)
	if st.dir {
		if old, ok := s.known[rel]; ok && old == st && s.w.Watched(rel) {
			return nil // its children report their own changes
		}
		s.note(p, rel, st)
		return s.scanTree(root, rel, p)
	}
	if old, ok := s.known[rel]; ok && old.dir {
		s.w.Forget(rel)
	}
	s.note(p, rel, st)
	return nil
}

// settle absorbs the events of the syncer's own writes into the host
// workspace (a pull), so the next push does not look at them again: a path
// as the syncer recorded it, or gone and never in the guest, is dropped; a
// directory the pull created is watched (and walked, for files put there
// since); anything else stays marked for the next push.
func (s *syncer) settle(root *nofollow.Dir) {
	if s.w == nil || s.full {
		return
	}
	dirty, lost, err := s.w.Drain()
	if err != nil || lost {
		s.full = true
		return
	}
	p := newPlan()
	// What settling looks at is the pull's cost, not a push's.
	defer func(st syncStats) { s.pushStats = st }(s.pushStats)
	for rel := range dirty {
		old, known := s.known[rel]
		fi, err := root.Lstat(rel)
		if err != nil {
			if known {
				s.w.Mark(rel)
			}
			continue
		}
		st := stateOf(fi)
		switch {
		case !known || old != st:
			s.w.Mark(rel)
		case st.dir && !s.w.Watched(rel):
			if err := s.scanTree(root, rel, p); err != nil {
				s.w.Mark(rel)
			}
		}
	}
	for rel := range p.cur {
		s.w.Mark(rel)
	}
	for rel := range p.gone {
		s.w.Mark(rel)
	}
}

// knowsBelow reports whether the guest holds rel or anything below it.
func (s *syncer) knowsBelow(rel string) bool {
	if _, ok := s.known[rel]; ok {
		return true
	}
	for k := range s.known {
		if strings.HasPrefix(k, rel+"/") {
			return true
		}
	}
	return false
}

// scanTree walks the directory at prefix ("" for the workspace), watching
// each directory before it is listed, and notes in p what the guest lacks
// and what it holds that is gone.
func (s *syncer) scanTree(root *nofollow.Dir, prefix string, p *plan) error {
	d := root
	if prefix != "" {
		sub, err := root.OpenDir(prefix)
		if err != nil {
			return nil // gone or replaced meanwhile: its event comes next time
		}
		defer sub.Close()
		d = sub
	}
	if s.w != nil {
		if err := s.w.AddAt(d, ".", prefix); err != nil {
			s.log.Debug("workspace directory not watched", "dir", prefix, "error", err)
		}
	}
	seen := map[string]bool{}
	err := d.Walk(func(rel string, fi fs.FileInfo, parent *nofollow.Dir, err error) error {
		if err != nil {
			return nil // a directory that cannot be listed: its contents are left out
		}
		if prefix != "" {
			rel = prefix + "/" + rel
		}
		s.pushStats.Examined++
		if sdk.HostOwned(rel) {
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		t := fi.Mode()
		if !t.IsRegular() && !t.IsDir() {
			return nil // symlinks, fifos, sockets, devices stay on the host
		}
		if t.IsDir() && s.w != nil {
			if err := s.w.AddAt(parent, fi.Name(), rel); err != nil {
				s.log.Debug("workspace directory not watched", "dir", rel, "error", err)
			}
		}
		seen[rel] = true
		s.note(p, rel, stateOf(fi))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read workspace %s: %w", s.dir, err)
	}
	for k := range s.known {
		if (prefix == "" || strings.HasPrefix(k, prefix+"/")) && !seen[k] {
			p.gone[k] = true
		}
	}
	return nil
}

// apply checks p against max_workspace and sends it.
func (s *syncer) apply(ctx context.Context, a *agentClient, root *nofollow.Dir, p *plan) error {
	if len(p.gone) == 0 && len(p.cur) == 0 {
		return nil
	}
	total := s.total
	removed := map[string]bool{}
	if len(p.gone) > 0 {
		for k, st := range s.known {
			for g := k; ; {
				if p.gone[g] {
					removed[k] = true
					total -= st.cost()
					break
				}
				i := strings.LastIndexByte(g, '/')
				if i < 0 {
					break
				}
				g = g[:i]
			}
		}
	}
	for rel, st := range p.cur {
		if old, ok := s.known[rel]; ok && !removed[rel] {
			total -= old.cost()
		}
		total += st.cost()
	}
	if total > s.max {
		return fmt.Errorf("workspace %s holds %d MiB, more than max_workspace (%d MiB)", s.dir, total>>20, s.max>>20)
	}
	gone := make([]string, 0, len(p.gone))
	for rel := range p.gone {
		gone = append(gone, rel)
	}
	sort.Strings(gone)
	for _, rel := range gone {
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpRemove, Tree: s.tree, Path: s.guest(rel)}); err != nil {
			return err
		}
		s.forgetKnown(rel)
		s.pushStats.Removed++
	}
	sort.Strings(p.dirs)
	for _, rel := range p.dirs {
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpMkdir, Tree: s.tree, Path: s.guest(rel), Mode: 0o777}); err != nil {
			return err
		}
		s.setKnown(rel, p.cur[rel])
	}
	sort.Strings(p.files)
	if err := s.pushFiles(ctx, a, root, p.files, p.cur); err != nil {
		return err
	}
	return nil
}
