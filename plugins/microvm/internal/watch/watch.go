// Package watch tracks which paths of a directory tree may have changed,
// with inotify: one watch per directory, events read without blocking when
// the caller asks (no goroutine), so the caller examines only those paths
// instead of scanning the tree. Both ends of the microVM workspace sync use
// it: the plugin on the host workspace, the agent on the guest's copy.
package watch

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// watchMask is what marks a workspace path as possibly changed.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// Set is an inotify instance over the directories of a tree. It only
// says which paths (relative to the tree) may have changed since it was
// last drained; the caller reads what they are now. On the host, watches
// are added through /proc/self/fd of a directory opened without following
// symlinks (sdk/nofollow), so they are on the directory that was listed,
// never on a symlink's target.
type Set struct {
	fd    int
	wdRel map[int32]string
	relWd map[string]int32
	dirty map[string]bool
	// lost: the kernel's queue overflowed, or the workspace root itself
	// was moved or deleted; only a full scan is right again.
	lost bool
}

// New starts an empty set.
func New() (*Set, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &Set{fd: fd, wdRel: map[int32]string{}, relWd: map[string]int32{}, dirty: map[string]bool{}}, nil
}

// Close releases the inotify instance, in the background: the kernel
// frees a group only after a grace period of its notification code (a
// synchronize_srcu, milliseconds), which no caller needs to wait for.
func (w *Set) Close() {
	if w != nil && w.fd >= 0 {
		go closeFD(w.fd)
		w.fd = -1
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }

// readQueued reads the events queued on a non-blocking notification fd,
// handing each read's bytes to parse, until the queue is empty.
func readQueued(fd int, parse func([]byte)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN) || (err == nil && n == 0):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		}
		parse(buf[:n])
	}
}

// AddAt watches the directory name below parent ("." for parent itself),
// found at rel ("" for the root), opened without following symlinks.
func (w *Set) AddAt(parent *nofollow.Dir, name, rel string) error {
	f, fi, err := parent.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("watch %q: %w", rel, err)
	}
	defer f.Close()
	if !fi.IsDir() {
		return fmt.Errorf("watch %q: not a directory", rel)
	}
	return w.add("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), rel, 0)
}

// Add watches the directory at path, found at rel ("" for the root); a
// symlink at path is not followed.
func (w *Set) Add(path, rel string) error {
	return w.add(path, rel, unix.IN_DONT_FOLLOW)
}

func (w *Set) add(p, rel string, flags uint32) error {
	wd, err := unix.InotifyAddWatch(w.fd, p, watchMask|flags)
	if err != nil {
		return fmt.Errorf("watch %q: %w", rel, err)
	}
	// The same directory moved keeps its watch descriptor.
	if old, ok := w.wdRel[int32(wd)]; ok && old != rel && w.relWd[old] == int32(wd) {
		delete(w.relWd, old)
	}
	w.wdRel[int32(wd)], w.relWd[rel] = rel, int32(wd)
	return nil
}

// Watched reports whether the directory at rel has a watch.
func (w *Set) Watched(rel string) bool {
	if w == nil {
		return false
	}
	_, ok := w.relWd[rel]
	return ok
}

// Forget drops the watches recorded below and at rel (a directory that is
// gone from there); a watch that meanwhile serves another path (the same
// directory, moved) is kept.
func (w *Set) Forget(rel string) {
	if w == nil {
		return
	}
	for r, wd := range w.relWd {
		if r == rel || rel == "" || strings.HasPrefix(r, rel+"/") {
			delete(w.relWd, r)
			if w.wdRel[wd] == r {
				delete(w.wdRel, wd)
				_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
			}
		}
	}
}

// Mark reports rel as possibly changed at the next drain.
func (w *Set) Mark(rel string) { w.dirty[rel] = true }

// Drain reads every queued event and returns the paths that may have
// changed since the last drain; lost says a full scan is needed.
func (w *Set) Drain() (dirty map[string]bool, lost bool, err error) {
	if err := readQueued(w.fd, w.parse); err != nil {
		return nil, true, fmt.Errorf("read inotify events: %w", err)
	}
	dirty, lost = w.dirty, w.lost
	w.dirty, w.lost = map[string]bool{}, false
	return dirty, lost, nil
}

func (w *Set) parse(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			w.lost = true
			continue
		}
		dir, ok := w.wdRel[ev.Wd]
		if !ok {
			continue
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			delete(w.wdRel, ev.Wd)
			if w.relWd[dir] == ev.Wd {
				delete(w.relWd, dir)
			}
			continue
		}
		if name == "" { // the watched directory itself
			if dir == "" && ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
				w.lost = true
			}
			if dir != "" {
				w.dirty[dir] = true
			}
			continue
		}
		if dir != "" {
			name = path.Join(dir, name)
		}
		w.dirty[name] = true
	}
}
