package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// Large workspace files arrive in the background: the host first has the
// agent create a placeholder of the right size, then fills it piece by
// piece while code already runs. Code that opens a placeholder waits until
// it is complete: each one carries a fanotify FAN_OPEN_PERM mark, and the
// agent answers the permission event only once the last piece is written.
// The agent writes through an fd it opened before the mark, so renaming or
// deleting the placeholder in the meantime does not lose the content. The
// scan skips placeholders (their content is the host's), and records each
// one once complete, so it is never copied back.

// pendingFile is one placeholder being filled.
type pendingFile struct {
	id   uint64
	rel  string // where it was created, in the workspace
	f    *os.File
	ino  uint64
	done chan struct{}
}

type lazyFiles struct {
	fan int // fanotify fd; -1 when the kernel refuses (then no placeholders)

	mu    sync.Mutex
	byIno map[uint64]*pendingFile
	byID  map[uint64]*pendingFile
}

func newLazyFiles() *lazyFiles {
	l := &lazyFiles{fan: -1, byIno: map[uint64]*pendingFile{}, byID: map[uint64]*pendingFile{}}
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_LARGEFILE)
	if err != nil {
		logf("large workspace files are sent whole (fanotify: %v)", err)
		return l
	}
	l.fan = fan
	go l.serve()
	return l
}

func inoOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// pending reports whether the inode is a placeholder still being filled.
func (l *lazyFiles) pending(ino uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.byIno[ino]
	return ok
}

// idle reports whether no placeholder waits for content.
func (l *lazyFiles) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byID) == 0
}

// placeholder creates (or takes over, if the path is a placeholder
// already) the file m.Path of m.Length bytes, to be filled as m.Pending.
func (l *lazyFiles) placeholder(m *proto.Msg) error {
	if l.fan < 0 {
		return errors.New("placeholders unavailable")
	}
	if m.Tree != proto.TreeWorkspace && m.Tree != "" {
		return fmt.Errorf("placeholders only in the workspace")
	}
	p, err := resolve(m.Tree, m.Path)
	if err != nil {
		return err
	}
	rel := strings.Trim(filepath.Clean("/"+m.Path), "/")
	l.mu.Lock()
	defer l.mu.Unlock()
	if fi, err := os.Lstat(p); err == nil {
		if pf, ok := l.byIno[inoOf(fi)]; ok {
			// The host sends it again (changed meanwhile, or a new host
			// process): same waiters, new content.
			delete(l.byID, pf.id)
			pf.id = m.Pending
			l.byID[pf.id] = pf
			if err := pf.f.Truncate(0); err != nil {
				return err
			}
			return pf.f.Truncate(m.Length)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		err = f.Truncate(m.Length)
	}
	if err == nil {
		err = unix.FanotifyMark(l.fan, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM, int(f.Fd()), "")
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("placeholder %s: %w", m.Path, err)
	}
	pf := &pendingFile{id: m.Pending, rel: rel, f: f, ino: inoOf(fi), done: make(chan struct{})}
	l.byIno[pf.ino], l.byID[pf.id] = pf, pf
	return nil
}

// fill writes a piece of a placeholder; the final one completes it, and
// then files records it as the host has it.
func (l *lazyFiles) fill(m *proto.Msg, files *files) error {
	l.mu.Lock()
	pf, ok := l.byID[m.Pending]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("no pending file %d", m.Pending)
	}
	if len(m.Data) > 0 {
		if _, err := pf.f.WriteAt(m.Data, m.Offset); err != nil {
			return err
		}
	}
	if !m.Final {
		return nil
	}
	if m.Length < 0 {
		l.finish(pf)
		p := filepath.Join(workspaceDir, pf.rel)
		if fi, err := os.Lstat(p); err == nil && inoOf(fi) == pf.ino {
			_ = os.Remove(p)
		}
		return nil
	}
	if err := pf.f.Truncate(m.Length); err != nil {
		return err
	}
	if m.Mode != 0 {
		_ = pf.f.Chmod(fs.FileMode(m.Mode).Perm())
	}
	l.finish(pf)
	p := filepath.Join(workspaceDir, pf.rel)
	if fi, err := os.Lstat(p); err == nil && inoOf(fi) == pf.ino {
		files.remember(proto.TreeWorkspace, pf.rel, p)
	}
	return nil
}

// finish ends a placeholder: its mark goes, waiters proceed.
func (l *lazyFiles) finish(pf *pendingFile) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID[pf.id] != pf {
		return
	}
	_ = unix.FanotifyMark(l.fan, unix.FAN_MARK_REMOVE, unix.FAN_OPEN_PERM, int(pf.f.Fd()), "")
	pf.f.Close()
	delete(l.byID, pf.id)
	delete(l.byIno, pf.ino)
	close(pf.done)
}

// abortUnder ends the placeholders created at rel or below it ("": all;
// the host removed them, or wiped the workspace).
func (l *lazyFiles) abortUnder(rel string) {
	l.mu.Lock()
	var all []*pendingFile
	for _, pf := range l.byID {
		if rel == "" || pf.rel == rel || strings.HasPrefix(pf.rel, rel+"/") {
			all = append(all, pf)
		}
	}
	l.mu.Unlock()
	for _, pf := range all {
		l.finish(pf)
	}
}

// serve answers open permission events: at once for files that are not
// placeholders and for the agent's own opens, after the last piece for
// placeholders.
func (l *lazyFiles) serve() {
	buf := make([]byte, 4096)
	self := int32(os.Getpid())
	for {
		n, err := unix.Read(l.fan, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			logf("fanotify: %v", err)
			return
		}
		for b := buf[:n]; len(b) >= int(unsafe.Sizeof(unix.FanotifyEventMetadata{})); {
			ev := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
			if ev.Event_len == 0 || int(ev.Event_len) > len(b) {
				break
			}
			b = b[ev.Event_len:]
			if ev.Fd < 0 {
				continue
			}
			if ev.Mask&unix.FAN_OPEN_PERM == 0 || ev.Pid == self {
				l.respond(ev.Fd)
				continue
			}
			go l.await(ev.Fd)
		}
	}
}

func (l *lazyFiles) await(fd int32) {
	var st unix.Stat_t
	if unix.Fstat(int(fd), &st) == nil {
		l.mu.Lock()
		pf := l.byIno[st.Ino]
		l.mu.Unlock()
		if pf != nil {
			<-pf.done
		}
	}
	l.respond(fd)
}

func (l *lazyFiles) respond(fd int32) {
	var r [8]byte
	binary.NativeEndian.PutUint32(r[0:4], uint32(fd))
	binary.NativeEndian.PutUint32(r[4:8], unix.FAN_ALLOW)
	if _, err := unix.Write(l.fan, r[:]); err != nil {
		logf("fanotify response: %v", err)
	}
	unix.Close(int(fd))
}
