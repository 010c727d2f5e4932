package backend

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

//go:embed guest/unpack.py
var unpackSource string

// The workspace lives in the allocation (a remote node's disk), kept in
// step with the host directory: host changes are pushed before each
// execution (one exec stream carrying a tar, only when something changed)
// and sandbox changes pulled right after it (directory listings through
// Nomad's alloc fs API, and the changed files), so files written in the
// sandbox are on the host when Execute returns. The host side reads and
// writes the workspace only through sdk/nofollow, never following a symlink.

// maxPush bounds one push (the tar is built in memory) and one pull (the
// host's disk is not the sandbox's to fill).
const maxPush = 256 << 20

type fileState struct {
	size  int64
	mtime int64
	dir   bool
}

// wsync mirrors one session's host workspace into its allocation.
type wsync struct {
	dir string
	sb  *sandbox // the allocation the known states describe
	// host and guest are the states of each path when both sides last
	// agreed on it.
	host  map[string]fileState
	guest map[string]fileState
}

func newWsync(dir string) *wsync { return &wsync{dir: dir} }

// attach points the syncer at sb; a new allocation starts empty.
func (w *wsync) attach(sb *sandbox) {
	if w.sb != sb {
		w.sb, w.host, w.guest = sb, map[string]fileState{}, map[string]fileState{}
	}
}

// push sends host entries that are new or changed and removes in the
// allocation what vanished on the host.
func (w *wsync) push(ctx context.Context, sb *sandbox) error {
	w.attach(sb)
	if w.dir == "" {
		return nil
	}
	root, err := nofollow.OpenRoot(w.dir)
	if err != nil {
		return fmt.Errorf("read workspace %s: %w", w.dir, err)
	}
	defer root.Close()
	cur := map[string]fileState{}
	var changed []string
	err = root.Walk(func(rel string, fi fs.FileInfo, _ *nofollow.Dir, err error) error {
		if err != nil {
			return nil
		}
		if sdk.HostOwned(rel) {
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil
		}
		st := fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dir: fi.IsDir()}
		cur[rel] = st
		if old, ok := w.host[rel]; !ok || old != st {
			changed = append(changed, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read workspace %s: %w", w.dir, err)
	}
	var gone []string
	for rel := range w.host {
		if _, ok := cur[rel]; !ok {
			gone = append(gone, rel)
		}
	}
	if len(changed) == 0 && len(gone) == 0 {
		return nil
	}
	sort.Strings(changed)
	sort.Strings(gone)
	var buf bytes.Buffer
	if err := writeTar(&buf, root, changed, gone); err != nil {
		return err
	}
	if err := sb.unpack(ctx, sandboxWorkspace, &buf, false); err != nil {
		return err
	}
	for _, rel := range gone {
		delete(w.host, rel)
		delete(w.guest, rel)
	}
	for _, rel := range changed {
		w.host[rel] = cur[rel]
	}
	// What the push wrote is not a change of the sandbox's.
	listing, err := sb.listTree(ctx, sandboxWorkspace)
	if err != nil {
		return err
	}
	for _, rel := range changed {
		if g, ok := listing[rel]; ok {
			w.guest[rel] = g
		}
	}
	return nil
}

// writeTar writes the regular files and directories rels of root, and a
// list of paths to delete, as a tar stream.
func writeTar(buf *bytes.Buffer, root *nofollow.Dir, rels, gone []string) error {
	tw := tar.NewWriter(buf)
	if len(gone) > 0 {
		js, err := json.Marshal(gone)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: ".mcpruntime-delete", Mode: 0o600, Size: int64(len(js))}); err != nil {
			return err
		}
		if _, err := tw.Write(js); err != nil {
			return err
		}
	}
	for _, rel := range rels {
		f, fi, err := root.Open(rel)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, nofollow.ErrSymlink) || errors.Is(err, nofollow.ErrNotRegular) {
				continue // changed on the host since the walk: the next push sees it
			}
			return fmt.Errorf("workspace file %s: %w", rel, err)
		}
		hdr := &tar.Header{Name: rel, Mode: int64(fi.Mode().Perm()) | 0o600, ModTime: fi.ModTime()}
		if fi.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", int64(fi.Mode().Perm())|0o700
			f.Close()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		if buf.Len()+int(fi.Size()) > maxPush {
			f.Close()
			return fmt.Errorf("workspace %s: more than %d MiB changed since the last execution", rel, maxPush>>20)
		}
		err = tw.WriteHeader(hdr)
		if err == nil {
			_, err = io.Copy(tw, io.LimitReader(f, fi.Size()))
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("workspace file %s: %w", rel, err)
		}
	}
	return tw.Close()
}

// unpack runs guest/unpack.py in the allocation with tr on its stdin.
func (sb *sandbox) unpack(ctx context.Context, dir string, tr io.Reader, readOnly bool) error {
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	var stderr bytes.Buffer
	cmd := []string{sb.e.s.Python, "-I", "-S", "-c", unpackSource, dir, mode}
	code, err := sb.e.c.Allocations().Exec(ctx, sb.alloc, taskName, false, cmd, tr, io.Discard, &stderr, nil, sb.e.qopts(ctx))
	if err != nil {
		return fmt.Errorf("push files to allocation %s: %w", shortID(sb.alloc.ID), err)
	}
	if code != 0 {
		return fmt.Errorf("push files to allocation %s: exit status %d: %s", shortID(sb.alloc.ID), code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// allocPath is a task path as Nomad's alloc fs API names it.
func allocPath(guest string) string { return taskName + guest }

// listTree lists the regular files and directories below a task
// directory, by path relative to it.
func (sb *sandbox) listTree(ctx context.Context, dir string) (map[string]fileState, error) {
	out := map[string]fileState{}
	queue := []string{""}
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		p := dir
		if rel != "" {
			p = dir + "/" + rel
		}
		infos, _, err := sb.e.c.AllocFS().List(sb.alloc, allocPath(p), sb.e.qopts(ctx))
		if err != nil {
			if rel == "" && strings.Contains(err.Error(), "no such file") {
				return out, nil
			}
			return nil, fmt.Errorf("list %s in allocation %s: %w", p, shortID(sb.alloc.ID), err)
		}
		for _, fi := range infos {
			r := path.Join(rel, fi.Name)
			// The core's own files in the workspace never come back from
			// a sandbox.
			if !validRel(r) || sdk.HostOwned(r) || !(fi.IsDir || strings.HasPrefix(fi.FileMode, "-")) {
				continue
			}
			out[r] = fileState{size: fi.Size, mtime: fi.ModTime.UnixNano(), dir: fi.IsDir}
			if fi.IsDir {
				queue = append(queue, r)
			}
		}
	}
	return out, nil
}

// pull copies what the sandbox changed in its workspace to the host.
func (w *wsync) pull(ctx context.Context, sb *sandbox) error {
	w.attach(sb)
	if w.dir == "" {
		return nil
	}
	listing, err := sb.listTree(ctx, sandboxWorkspace)
	if err != nil {
		return err
	}
	var changed, gone []string
	for rel, st := range listing {
		if old, ok := w.guest[rel]; !ok || old != st {
			changed = append(changed, rel)
		}
	}
	for rel := range w.guest {
		if _, ok := listing[rel]; !ok {
			gone = append(gone, rel)
		}
	}
	if len(changed) == 0 && len(gone) == 0 {
		return nil
	}
	root, err := nofollow.OpenRoot(w.dir)
	if err != nil {
		return fmt.Errorf("open workspace: %w", err)
	}
	defer root.Close()
	sort.Strings(changed)
	sort.Sort(sort.Reverse(sort.StringSlice(gone))) // children before parents
	for _, rel := range gone {
		if err := root.RemoveAll(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("workspace %s: %w", rel, err)
		}
		delete(w.guest, rel)
		delete(w.host, rel)
	}
	var total int64
	for _, rel := range changed {
		st := listing[rel]
		if total += st.size; total > maxPush {
			return fmt.Errorf("the sandbox changed more than %d MiB of workspace files in one execution; %s and later files were not copied back", maxPush>>20, rel)
		}
		if st.dir {
			if err := root.MkdirAll(rel, 0o755); err != nil {
				return fmt.Errorf("workspace %s: %w", rel, err)
			}
		} else if err := sb.pullFile(ctx, root, rel); err != nil {
			return err
		}
		w.guest[rel] = st
		if fi, err := root.Lstat(rel); err == nil {
			w.host[rel] = fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dir: fi.IsDir()}
		}
	}
	return nil
}

func (sb *sandbox) pullFile(ctx context.Context, root *nofollow.Dir, rel string) error {
	if d := path.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("workspace %s: %w", d, err)
		}
	}
	if fi, err := root.Lstat(rel); err == nil && fi.IsDir() {
		if err := root.RemoveAll(rel); err != nil {
			return fmt.Errorf("workspace %s: %w", rel, err)
		}
	}
	rc, err := sb.e.c.AllocFS().Cat(sb.alloc, allocPath(sandboxWorkspace+"/"+rel), sb.e.qopts(ctx))
	if err != nil {
		return fmt.Errorf("read %s from allocation %s: %w", rel, shortID(sb.alloc.ID), err)
	}
	defer rc.Close()
	if err := root.ReplaceFile(rel, 0o644, func(f *os.File) error {
		_, err := io.Copy(f, rc)
		return err
	}); err != nil {
		return fmt.Errorf("workspace %s: %w", rel, err)
	}
	return nil
}

func validRel(rel string) bool {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\x00") {
		return false
	}
	return path.Clean(rel) == rel && rel != ".." && !strings.HasPrefix(rel, "../")
}

// pushLibs copies the session's library mounts (below sdk.GuestLib) into
// the allocation, read-only, at libDir.
func pushLibs(ctx context.Context, sb *sandbox, spec *sdk.SessionSpec) error {
	mounts, err := sdk.LibMounts(spec)
	if err != nil || len(mounts) == 0 {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range mounts {
		root, err := nofollow.OpenRoot(m.Source)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Rel, err)
		}
		var rels []string
		err = root.Walk(func(rel string, fi fs.FileInfo, _ *nofollow.Dir, err error) error {
			if err == nil && (fi.Mode().IsRegular() || fi.IsDir()) {
				rels = append(rels, rel)
			}
			return nil
		})
		if err == nil {
			err = addTree(tw, root, m.Rel, rels)
		}
		root.Close()
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return sb.unpack(ctx, libDir, &buf, true)
}

// addTree adds rels of root below prefix to tw.
func addTree(tw *tar.Writer, root *nofollow.Dir, prefix string, rels []string) error {
	if err := tw.WriteHeader(&tar.Header{Name: prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	for _, rel := range rels {
		f, fi, err := root.Open(rel)
		if err != nil {
			continue
		}
		name := prefix + "/" + rel
		if fi.IsDir() {
			f.Close()
			if err := tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
			continue
		}
		err = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()})
		if err == nil {
			_, err = io.Copy(tw, io.LimitReader(f, fi.Size()))
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
