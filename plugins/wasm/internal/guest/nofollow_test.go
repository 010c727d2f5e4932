package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow/swaptest"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

const outsideSecret = "HOST SECRET: owner only"

// hostile is a workspace and, outside it, a 0600 file and a directory
// holding another: what sandbox code of another session sharing the
// workspace (say a container, which can make symlinks) points links at.
type hostile struct {
	ws, outside, secret string
}

func newHostile(t *testing.T) hostile {
	t.Helper()
	h := hostile{ws: t.TempDir(), outside: t.TempDir()}
	h.secret = filepath.Join(h.outside, "secret")
	for _, p := range []string{h.secret, filepath.Join(h.outside, "d", "f")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(outsideSecret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h hostile) symlink(t *testing.T, target, name string) {
	t.Helper()
	p := filepath.Join(h.ws, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func (h hostile) run(t *testing.T, code string) string {
	t.Helper()
	rt, lib := newRuntime(t, 256<<20, false)
	exit, out, errs, err := runCode(t, rt, lib, code, Mount{FS: NewBindableFS(h.ws, false), Guest: "/workspace"})
	if err != nil || exit != 0 {
		t.Fatalf("exit=%d err=%v stderr=%s\nstdout=%s", exit, err, errs, out)
	}
	return out
}

// Symlinks planted in the workspace to a file and a directory outside it
// are never followed: reading, appending, truncating, creating through a
// dangling link, listing or stat-ing through them fails with ELOOP, while
// lstat, listdir and readlink show them as the symlinks they are.
func TestPlantedSymlinksAreNotFollowed(t *testing.T) {
	h := newHostile(t)
	h.symlink(t, h.secret, "leak")
	h.symlink(t, h.secret, "sub/leak")
	h.symlink(t, filepath.Join(h.outside, "d"), "dlink")
	h.symlink(t, filepath.Join(h.outside, "new"), "dangling")
	out := h.run(t, fmt.Sprintf(`
import errno, os, stat
def try_(name, f):
    try:
        r = f()
        print(name, 'OK', repr(r))
    except OSError as e:
        print(name, 'ERR', errno.errorcode.get(e.errno, e.errno))
try_('read', lambda: open('/workspace/leak').read())
try_('read_nested', lambda: open('/workspace/sub/leak').read())
try_('read_below_dir_link', lambda: open('/workspace/dlink/f').read())
try_('list_dir_link', lambda: os.listdir('/workspace/dlink'))
try_('append', lambda: open('/workspace/leak', 'a').write('appended'))
try_('truncate', lambda: open('/workspace/leak', 'w').write('written'))
try_('create_dangling', lambda: open('/workspace/dangling', 'w').write('created'))
try_('create_below_dir_link', lambda: open('/workspace/dlink/g', 'w').write('created'))
try_('mkdir_below_dir_link', lambda: os.mkdir('/workspace/dlink/newdir'))
try_('unlink_below_dir_link', lambda: os.unlink('/workspace/dlink/f'))
try_('stat', lambda: os.stat('/workspace/leak').st_size)
try_('chmod', lambda: os.chmod('/workspace/leak', 0o666))
try_('utime', lambda: os.utime('/workspace/leak', (0, 0)))
try_('lstat_is_link', lambda: stat.S_ISLNK(os.lstat('/workspace/leak').st_mode))
try_('listdir', lambda: sorted(os.listdir('/workspace')))
try_('scandir_links', lambda: sorted(e.name for e in os.scandir('/workspace') if e.is_symlink()))
try_('readlink', lambda: os.readlink('/workspace/leak') == %q)
try_('walk', lambda: sorted(p for p, _, _ in os.walk('/workspace')))
`, h.secret))
	t.Log(out)
	if strings.Contains(out, outsideSecret) {
		t.Fatalf("the guest read a file outside the workspace through a symlink:\n%s", out)
	}
	for _, want := range []string{
		"read ERR ELOOP", "read_nested ERR ELOOP", "read_below_dir_link ERR ELOOP", "list_dir_link ERR ELOOP",
		"append ERR ELOOP", "truncate ERR ELOOP", "create_dangling ERR ELOOP", "create_below_dir_link ERR ELOOP",
		"mkdir_below_dir_link ERR ELOOP", "unlink_below_dir_link ERR ELOOP", "stat ERR ELOOP", "utime ERR ELOOP",
		"lstat_is_link OK True", "listdir OK ['dangling', 'dlink', 'leak', 'sub']",
		"scandir_links OK ['dangling', 'dlink', 'leak']", "walk OK ['/workspace', '/workspace/sub']",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in the output", want)
		}
	}
	if b, err := os.ReadFile(h.secret); err != nil || string(b) != outsideSecret {
		t.Errorf("the outside file changed: %q %v", b, err)
	}
	// (CPython for WASI has no chmod: os.chmod is a no-op there; the mode
	// is checked all the same.)
	if fi, err := os.Stat(h.secret); err != nil || fi.Mode().Perm() != 0o600 || fi.ModTime().Unix() == 0 {
		t.Errorf("the outside file's mode or times changed: %v %v", fi, err)
	}
	for _, p := range []string{"new", "d/g", "d/newdir"} {
		if _, err := os.Lstat(filepath.Join(h.outside, p)); err == nil {
			t.Errorf("created outside the workspace: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(h.outside, "d", "f")); err != nil {
		t.Errorf("removed outside the workspace: %v", err)
	}
}

// A file and a directory of the workspace are swapped for symlinks to
// outside ones over and over while the guest reads them: it gets the
// workspace's content or an error, never the outside content.
func TestSymlinkSwapRaceNeverReadsOutside(t *testing.T) {
	const reads = 400
	h := newHostile(t)
	for _, p := range []string{"f", "d/f"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(h.ws, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.ws, p), []byte("workspace content"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer swaptest.Exchange(t, h.ws, "f", h.secret)()
	defer swaptest.Exchange(t, h.ws, "d", filepath.Join(h.outside, "d"))()
	out := h.run(t, strings.ReplaceAll(`
import collections
seen = collections.Counter()
for i in range(N):
    for p in ('/workspace/f', '/workspace/d/f'):
        try:
            with open(p) as f:
                seen[f.read()] += 1
        except OSError as e:
            seen['errno %d' % e.errno] += 1
for k, v in sorted(seen.items()):
    print(repr(k), v)
`, "N", "400"))
	t.Log(out)
	if strings.Contains(out, outsideSecret) {
		t.Fatalf("a swapped-in symlink was followed out of the workspace:\n%s", out)
	}
	if !strings.Contains(out, "'workspace content'") {
		t.Fatalf("no read succeeded in %d tries: the race did not run as meant:\n%s", 2*reads, out)
	}
}

// Ordinary file work on the mount behaves as on a POSIX file system.
func TestWorkspaceFileIO(t *testing.T) {
	h := newHostile(t)
	if err := os.WriteFile(filepath.Join(h.ws, "host.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.run(t, `
import os, shutil, stat, errno
os.chdir('/workspace')
assert open('host.txt').read() == 'from the host'
os.makedirs('a/b/c')
with open('a/b/c/f.txt', 'w') as f:
    f.write('hello')
with open('a/b/c/f.txt', 'a') as f:
    f.write(' world')
assert open('a/b/c/f.txt').read() == 'hello world'
with open('a/b/c/f.txt', 'r+b') as f:
    f.seek(6); f.write(b'WORLD'); f.seek(0)
    assert f.read() == b'hello WORLD'
    f.truncate(5)
assert os.stat('a/b/c/f.txt').st_size == 5
os.rename('a/b/c/f.txt', 'a/g.txt')
os.replace('host.txt', 'a/g.txt')
assert open('a/g.txt').read() == 'from the host'
shutil.copy('a/g.txt', 'a/b/copy.txt')
os.link('a/b/copy.txt', 'a/b/hard.txt')
assert os.stat('a/b/hard.txt').st_nlink == 2
os.utime('a/b/copy.txt', (1000, 2000))
assert os.stat('a/b/copy.txt').st_mtime == 2000
for i in range(300):
    open('a/many%03d' % i, 'w').close()
assert len(os.listdir('a')) == 302, len(os.listdir('a'))
assert sorted(e.name for e in os.scandir('a') if e.is_dir()) == ['b']
walked = sorted((p, sorted(d), len(f)) for p, d, f in os.walk('.'))
print(walked)
try:
    os.rmdir('a')
except OSError as e:
    print('rmdir nonempty', errno.errorcode[e.errno])
try:
    os.unlink('a/b')
except OSError as e:
    print('unlink dir', errno.errorcode[e.errno])
try:
    open('missing/x', 'w')
except OSError as e:
    print('missing parent', errno.errorcode[e.errno])
try:
    os.mkdir('a')
except OSError as e:
    print('mkdir exists', errno.errorcode[e.errno])
try:
    open('a/g.txt', 'x')
except OSError as e:
    print('exclusive', errno.errorcode[e.errno])
print('isdir', os.path.isdir('a/b/c/'), os.path.exists('a/g.txt/'))
os.unlink('a/b/hard.txt')
shutil.rmtree('a')
os.rmdir('.') if False else None
print('left', os.listdir('.'))
`)
	for _, want := range []string{
		"[('.', ['a'], 0), ('./a', ['b'], 301), ('./a/b', ['c'], 2), ('./a/b/c', [], 0)]",
		"rmdir nonempty ENOTEMPTY", "unlink dir EISDIR", "missing parent ENOENT", "mkdir exists EEXIST",
		"exclusive EEXIST", "isdir True False", "left []",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// Bind moves the mount to another directory (the old one's fd is closed);
// a directory that cannot be opened leaves a mount that answers every call
// with that errno, and a read-only mount refuses writes with EROFS.
func TestBind(t *testing.T) {
	a, c := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(c, "f"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := NewBindableFS(a, false)
	if _, errno := b.Stat("f"); errno != experimentalsys.ENOENT {
		t.Fatalf("stat f in a: %v", errno)
	}
	if err := b.Bind(c, true); err != nil {
		t.Fatal(err)
	}
	if st, errno := b.Stat("f"); errno != 0 || st.Size != 1 {
		t.Fatalf("stat f in c: %v %v", st, errno)
	}
	if _, errno := b.OpenFile("g", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644); errno != experimentalsys.EROFS {
		t.Fatalf("create on a read-only mount: %v", errno)
	}
	if errno := b.Unlink("f"); errno != experimentalsys.EROFS {
		t.Fatalf("unlink on a read-only mount: %v", errno)
	}
	f, errno := b.OpenFile("f", experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := f.Write([]byte("x")); errno != experimentalsys.EBADF {
		t.Fatalf("write to a file of a read-only mount: %v", errno)
	}
	if errno := f.Utimens(0, 0); errno != experimentalsys.EBADF {
		t.Fatalf("utimens of a file of a read-only mount: %v", errno)
	}
	f.Close()
	if err := b.Bind(filepath.Join(a, "missing"), false); err == nil {
		t.Fatal("Bind to a missing directory succeeded")
	}
	if _, errno := b.Stat("f"); errno != experimentalsys.ENOENT {
		t.Fatalf("stat on a mount whose Bind failed: %v", errno)
	}
	if err := b.Bind(a, false); err != nil {
		t.Fatal(err)
	}
	if _, errno := b.OpenFile("g", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644); errno != 0 {
		t.Fatalf("create after rebinding: %v", errno)
	}
}

// A read-only mount's own symlinks at Bind are mount points (the backend
// builds the per-session import root as skills -> the skills dir); below
// them nothing is followed either.
func TestReadOnlyMountPoints(t *testing.T) {
	h := newHostile(t)
	lib, skills := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(skills, "greet.py"), []byte("def run(n):\n    return 'hi ' + n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{skills, filepath.Join(lib, "skills")}, {h.secret, filepath.Join(skills, "evil")}, {h.secret, filepath.Join(lib, "file")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	rt, stdlib := newRuntime(t, 256<<20, false)
	exit, out, errs, err := runCode(t, rt, stdlib, `
import sys, os
sys.path.insert(0, '/mcpruntime/lib')
from skills.greet import run
print(run('x'), sorted(os.listdir('/mcpruntime/lib/skills')))
for p in ('/mcpruntime/lib/skills/evil', '/mcpruntime/lib/file'):
    try:
        print(open(p).read())
    except OSError as e:
        print('refused', e.errno)
try:
    open('/mcpruntime/lib/skills/new.py', 'w')
except OSError as e:
    print('read-only', e.strerror)
`, Mount{FS: NewBindableFS(lib, true), Guest: "/mcpruntime/lib"})
	if err != nil || exit != 0 {
		t.Fatalf("exit=%d err=%v stderr=%s", exit, err, errs)
	}
	if want := "hi x ['evil', 'greet.py']\nrefused 32\nrefused 32\nread-only Read-only file system\n"; out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}
