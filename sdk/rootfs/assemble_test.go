package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// buildDeb makes a minimal .deb holding files (path -> content) with
// dpkg-deb, so assembly is tested without a network or an archive.
func buildDeb(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	src := filepath.Join(t.TempDir(), name)
	control := "Package: " + name + "\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
	files["DEBIAN/control"] = control
	for p, content := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(t.TempDir(), name+".deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}
	return deb
}

func TestAssemble(t *testing.T) {
	if _, err := exec.LookPath("ldconfig"); err != nil {
		t.Skip("ldconfig not installed")
	}
	a := buildDeb(t, "a", map[string]string{
		"bin/tool":                                   "a's tool",
		"lib/x86_64-linux-gnu/liba.so.1":             "not really a library",
		"usr/lib/x86_64-linux-gnu/blas/libblas.so.3": "alternative",
		"usr/share/doc/a/copyright":                  "docs",
	})
	b := buildDeb(t, "b", map[string]string{
		"usr/bin/other":    "b's tool",
		"usr/share/b/data": "kept",
		"sbin/admin":       "b's admin tool",
	})
	root := filepath.Join(t.TempDir(), "root")
	err := Assemble(context.Background(), root, []string{a, b},
		WithUser("sandbox", 1000, "/workspace"), WithDirs("workspace", "mcpruntime/lib"),
		WithSymlink("usr/bin/sh", "dash"), WithSymlink("usr/bin/tool", "ignored-exists"), WithHostname("box"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Merged /usr: the top-level directories are links and their files
	// reachable through both paths.
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink(filepath.Join(root, d)); err != nil || target != "usr/"+d {
			t.Errorf("/%s: link %q, %v", d, target, err)
		}
	}
	if read("bin/tool") != "a's tool" || read("usr/sbin/admin") != "b's admin tool" || read("usr/bin/other") != "b's tool" {
		t.Error("package files not where merged /usr puts them")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/doc")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("documentation kept: %v", err)
	}
	if read("usr/share/b/data") != "kept" {
		t.Error("non-documentation data pruned")
	}
	if p := read("etc/passwd"); !strings.Contains(p, "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n") || !strings.HasPrefix(p, "root:x:0:0:") {
		t.Errorf("passwd: %q", p)
	}
	if g := read("etc/group"); !strings.Contains(g, "sandbox:x:1000:\n") {
		t.Errorf("group: %q", g)
	}
	if read("etc/hostname") != "box\n" || !strings.Contains(read("etc/hosts"), "localhost box") {
		t.Error("hostname not applied")
	}
	if st, err := os.Stat(filepath.Join(root, "etc/shadow")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("shadow: %v %v", st, err)
	}
	for _, d := range []string{"proc", "dev", "sys", "run", "root", "workspace", "mcpruntime/lib"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("directory %s: %v", d, err)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "tmp")); err != nil || st.Mode()&fs.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("/tmp mode: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/bin/sh")); err != nil || l != "dash" {
		t.Errorf("symlink: %q %v", l, err)
	}
	if read("usr/bin/tool") != "a's tool" {
		t.Error("WithSymlink replaced a packaged file")
	}
	if c := read("etc/ld.so.conf.d/zz-alternatives.conf"); c != "/usr/lib/x86_64-linux-gnu/blas\n" {
		t.Errorf("alternative library dirs: %q", c)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ld.so.cache")); err != nil {
		t.Errorf("no linker cache: %v", err)
	}
}

func TestExtractReportsEveryFailure(t *testing.T) {
	good := buildDeb(t, "good", map[string]string{"usr/x": "x"})
	bad := filepath.Join(t.TempDir(), "bad.deb")
	if err := os.WriteFile(bad, []byte("not a deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Extract(context.Background(), t.TempDir(), good, bad)
	if err == nil || !strings.Contains(err.Error(), "extract bad.deb") {
		t.Fatalf("error %v does not name the bad package", err)
	}
}

func TestMoveTreeKeepsExisting(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{"lib/a": "old a", "lib/sub/b": "b", "usr/lib/a": "usr a"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := mergeUsr(root); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"usr/lib/a": "usr a", "usr/lib/sub/b": "b", "lib/sub/b": "b"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
}

func TestKey(t *testing.T) {
	a := Package{Name: "a", Version: "1", Arch: "all", SHA256: "x"}
	b := Package{Name: "b", Version: "2", Arch: "amd64", SHA256: "y"}
	k := Key([]Package{a, b}, "recipe-1")
	if len(k) != 16 {
		t.Fatalf("key %q", k)
	}
	if Key([]Package{b, a}, "recipe-1") != k {
		t.Error("package order changed the key")
	}
	b2 := b
	b2.SHA256 = "z"
	for name, other := range map[string]string{
		"extra":          Key([]Package{a, b}, "recipe-2"),
		"digest":         Key([]Package{a, b2}, "recipe-1"),
		"extra boundary": Key([]Package{a, b}, "recipe-", "1"),
		"no extra":       Key([]Package{a, b}),
	} {
		if other == k {
			t.Errorf("%s did not change the key", name)
		}
	}
}

func TestCached(t *testing.T) {
	dir := t.TempDir()
	var builds atomic.Int32
	build := func(_ context.Context, out string) error {
		builds.Add(1)
		return os.WriteFile(out, []byte("artefact"), 0o644)
	}
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = Cached(context.Background(), dir, "thing-k1", build)
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != filepath.Join(dir, "thing-k1") {
			t.Fatalf("caller %d: %q %v", i, paths[i], errs[i])
		}
	}
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times, want once", n)
	}
	// A failed build leaves neither the artefact nor scratch behind.
	_, err := Cached(context.Background(), dir, "thing-k2", func(_ context.Context, out string) error {
		if err := os.WriteFile(out, []byte("half"), 0o644); err != nil {
			return err
		}
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "build thing-k2: disk on fire") {
		t.Fatalf("error %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") && e.Name() != "thing-k1" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestFetchUsesVerifiedCache(t *testing.T) {
	dir := t.TempDir()
	data := []byte("a cached package")
	sum := sha256.Sum256(data)
	p := Package{Name: "a", Version: "1:2.0", Arch: "all", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	if err := os.WriteFile(filepath.Join(dir, "a_1%3a2.0_all.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Everything is cached and matches: apt is never asked.
	paths, err := Fetch(context.Background(), dir, []Package{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || filepath.Base(paths[0]) != "a_1%3a2.0_all.deb" {
		t.Fatalf("paths %q", paths)
	}
	bad := p
	bad.SHA256 = strings.Repeat("0", 64)
	if err := verify(paths[0], bad); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("digest mismatch not caught: %v", err)
	}
	short := p
	short.Size++
	if err := verify(paths[0], short); err == nil {
		t.Fatal("size mismatch not caught")
	}
}
