package vmm

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
	"golang.org/x/sys/unix"
)

// An image holds exactly the workspace's directories and regular files
// (content, permission bits, root's ownership), and a symlink in the
// workspace, to a host file or a host directory, pulls nothing of the host
// into it.
func TestBuildWorkspaceImage(t *testing.T) {
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("e2fsprogs not installed")
	}
	outside := t.TempDir()
	secret := []byte("host-secret-4f1c0a")
	if err := os.WriteFile(filepath.Join(outside, "secret"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	want := map[string]string{
		"a.txt":            "alpha",
		"with space.txt":   "spaced",
		"sub/deeper/b.txt": "beta",
		"sub/exec.sh":      "#!/bin/sh\n",
		"empty.txt":        "",
	}
	for rel, data := range want {
		p := filepath.Join(ws, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(ws, "sub/exec.sh"), 0o750); err != nil {
		t.Fatal(err)
	}
	// A large sparse file: a hole, then data.
	big := filepath.Join(ws, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), 64<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.MkdirAll(filepath.Join(ws, "skipped/below"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"evil": filepath.Join(outside, "secret"), "evildir": outside, "sub/up": ".."} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}

	root, err := nofollow.OpenRoot(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	img := filepath.Join(t.TempDir(), "ws.img")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dirs []string
	entries, err := BuildWorkspaceImage(ctx, img, 256, root, ImageOptions{
		Skip: func(rel string) bool { return rel == "skipped" },
		Dir:  func(_ *nofollow.Dir, _, rel string) { dirs = append(dirs, rel) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Rel)
	}
	sort.Strings(got)
	wantRels := []string{"a.txt", "big.bin", "empty.txt", "sub", "sub/deeper", "sub/deeper/b.txt", "sub/exec.sh", "with space.txt"}
	if !equal(got, wantRels) {
		t.Fatalf("manifest %q, want %q", got, wantRels)
	}

	sort.Strings(dirs)
	if !equal(dirs, []string{"", "sub", "sub/deeper"}) {
		t.Fatalf("directories reported %q", dirs)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("the image holds the host file a workspace symlink points at")
	}
	if l := ext4LabelOf(raw); l != WorkspaceLabel {
		t.Fatalf("label %q, want %q", l, WorkspaceLabel)
	}

	// What the guest would see below ws/.
	dump := t.TempDir()
	if out, err := exec.Command("debugfs", "-R", "rdump ws "+dump, img).CombinedOutput(); err != nil {
		t.Fatalf("rdump: %v %s", err, out)
	}
	var seen []string
	err = filepath.WalkDir(filepath.Join(dump, "ws"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(dump, "ws"), p)
		if rel == "." {
			return nil
		}
		seen = append(seen, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symlink in the image", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(seen)
	if !equal(seen, wantRels) {
		t.Fatalf("image holds %q, want %q", seen, wantRels)
	}
	for rel, data := range want {
		b, err := os.ReadFile(filepath.Join(dump, "ws", rel))
		if err != nil || string(b) != data {
			t.Errorf("%s: %q %v, want %q", rel, b, err, data)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dump, "ws", "big.bin")); err != nil || len(b) != 64<<20+4 || string(b[64<<20:]) != "tail" {
		t.Errorf("big.bin: %d bytes %v", len(b), err)
	}
	out, err := exec.Command("debugfs", "-R", "stat ws/sub/exec.sh", img).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Mode:  0750")) || !bytes.Contains(out, []byte("User:     0   Group:     0")) {
		t.Errorf("exec.sh mode/owner: %v\n%s", err, out)
	}
	// The big file's hole stays a hole: the image holds about what the
	// workspace does, not 64 MiB more.
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 32<<20 {
		t.Errorf("the image takes %d bytes on the host: the workspace's hole was filled", used)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ext4LabelOf reads the volume label from an ext4 image's superblock.
func ext4LabelOf(raw []byte) string {
	if len(raw) < 1024+136 {
		return ""
	}
	return string(bytes.TrimRight(raw[1024+120:1024+136], "\x00"))
}
