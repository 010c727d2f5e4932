package watch

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fsMask is what marks a path as possibly changed: directory entries
// created, deleted or moved (directories too: FAN_ONDIR), and file
// contents or attributes changed.
const fsMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
	unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_ONDIR

// FS tracks a whole file system with one fanotify mark, instead of one
// inotify watch per directory: making it costs the same for a workspace
// of five directories or five thousand, and a new directory needs no
// watch before what is done in it is seen. Events name the directory by
// its file handle and the entry by its name; a drain turns each handle
// into the directory's path below the tree's root (open_by_handle_at,
// then the fd's path), once per directory. Entries outside the tree (the
// file system's other directories) are ignored. It needs CAP_SYS_ADMIN
// and a file system that reports file handles (ext4; not tmpfs before
// Linux 6.7): NewFS fails otherwise, and the caller uses a Set.
type FS struct {
	fd   int
	root *os.File // the tree's root: where handles are opened, and the prefix cut
	pfx  string
	raw  []rawEvent
	lost bool
}

// metaSize is the size of struct fanotify_event_metadata.
const metaSize = 24

// rawEvent is an event not yet resolved: the directory's handle and the
// entry's name.
type rawEvent struct {
	handle string // handle type (4 bytes) and handle bytes
	name   string
}

// NewFS marks the file system holding root.
func NewFS(root string) (*FS, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_REPORT_DFID_NAME|unix.FAN_NONBLOCK|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify: %w", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fsMask, unix.AT_FDCWD, root); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify mark %s: %w", root, err)
	}
	// Not O_PATH: open_by_handle_at refuses such an fd as its mount.
	rf, err := os.OpenFile(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: %w", err)
	}
	pfx, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(rf.Fd())))
	if err != nil {
		rf.Close()
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: %w", err)
	}
	return &FS{fd: fd, root: rf, pfx: filepath.Clean(pfx)}, nil
}

// Close releases the fanotify group, in the background (as Set.Close).
func (w *FS) Close() {
	if w != nil && w.fd >= 0 {
		go closeFD(w.fd)
		w.root.Close()
		w.fd = -1
	}
}

// Add does nothing: every directory of the file system is watched.
func (w *FS) Add(path, rel string) error { return nil }

// Watched reports true: every directory of the file system is watched.
func (w *FS) Watched(rel string) bool { return true }

// Forget does nothing: no watch belongs to a path.
func (w *FS) Forget(rel string) {}

// Drain reads every queued event and returns the paths below the root
// that may have changed since the last drain; lost says a full scan is
// needed (the kernel's queue overflowed).
func (w *FS) Drain() (dirty map[string]bool, lost bool, err error) {
	if err := readQueued(w.fd, w.parse); err != nil {
		return nil, true, fmt.Errorf("read fanotify events: %w", err)
	}
	dirty, lost = w.resolve(), w.lost
	w.raw, w.lost = nil, false
	return dirty, lost, nil
}

// parse queues the events in b. Each is a fanotify_event_metadata and
// info records; the one used is the DFID_NAME record: a header, the
// fsid, a file_handle of the directory and the entry's name.
func (w *FS) parse(b []byte) {
	le := binary.LittleEndian
	for len(b) >= metaSize {
		evLen := int(le.Uint32(b[0:]))
		metaLen := int(le.Uint16(b[6:]))
		if evLen < metaLen || evLen > len(b) || metaLen < metaSize {
			w.lost = true // not the layout this reads: scan everything
			return
		}
		mask := le.Uint64(b[8:])
		ev := b[:evLen]
		b = b[evLen:]
		if mask&unix.FAN_Q_OVERFLOW != 0 {
			w.lost = true
			continue
		}
		for info := ev[metaLen:]; len(info) >= 4; {
			typ, n := info[0], int(le.Uint16(info[2:]))
			if n < 4 || n > len(info) {
				break
			}
			rec := info[:n]
			info = info[n:]
			// header (4), fsid (8), handle_bytes (4), handle_type (4),
			// handle, name (NUL-terminated).
			if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME || len(rec) < 20 {
				continue
			}
			hb := int(le.Uint32(rec[12:]))
			if 20+hb > len(rec) {
				continue
			}
			name, _, _ := strings.Cut(string(rec[20+hb:]), "\x00")
			w.raw = append(w.raw, rawEvent{handle: string(rec[16 : 20+hb]), name: name})
		}
	}
}

// resolve turns the queued events into paths below the root, opening
// each directory's handle once. A directory gone since (a stale handle)
// is skipped: its own removal is an event in its parent.
func (w *FS) resolve() map[string]bool {
	dirty := map[string]bool{}
	dirs := map[string]string{} // handle -> rel, "-" outside the root or gone
	for _, ev := range w.raw {
		rel, ok := dirs[ev.handle]
		if !ok {
			rel = w.dirOf(ev.handle)
			dirs[ev.handle] = rel
		}
		if rel == "-" {
			continue
		}
		switch {
		case ev.name == "" || ev.name == ".":
			if rel != "" {
				dirty[rel] = true // the directory itself
			}
		case rel == "":
			dirty[ev.name] = true
		default:
			dirty[rel+"/"+ev.name] = true
		}
	}
	return dirty
}

// dirOf is the path below the root of the directory with handle h
// (type and bytes), or "-".
func (w *FS) dirOf(h string) string {
	typ := int32(binary.LittleEndian.Uint32([]byte(h[:4])))
	fd, err := unix.OpenByHandleAt(int(w.root.Fd()), unix.NewFileHandle(typ, []byte(h[4:])), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "-"
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink == 0 {
		return "-" // removed since: its path is not one any more
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "-"
	}
	if p == w.pfx {
		return ""
	}
	if rel, ok := strings.CutPrefix(p, w.pfx+"/"); ok {
		return rel
	}
	return "-"
}
