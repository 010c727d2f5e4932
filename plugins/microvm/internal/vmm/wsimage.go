package vmm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk/nofollow"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// A workspace image is a workspace disk (same size, label and layout as
// the one makeWorkspaceDisk makes and the agent mounts: the files below
// ws/) that already holds a host workspace, so a pooled VM can be given
// the workspace by swapping its disk instead of receiving every file over
// the agent channel.
//
// The host reads the workspace only through sdk/nofollow: every file is
// opened by the plugin (openat2 without symlink resolution, fstat-checked
// regular file) and debugfs copies it from that open file (/dev/fd/N, the
// same inode, no path lookup in the workspace). mke2fs -d is not used: it
// reads the source tree by path (chdir into directories, open of files),
// so a directory or file swapped for a symlink while it runs would pull a
// host file into the image. Symlinks, devices, fifos and sockets are
// skipped, as the sync skips them; so are names debugfs's command line
// cannot carry (a newline or a double quote): they reach the guest through
// the ordinary sync, which finds them missing from the manifest.

// imageFDBatch bounds the files one debugfs run gets (its extra fds).
const imageFDBatch = 512

// ImageEntry is what went into an image for one path: the fstat of the
// file as it was opened (or the lstat of a directory).
type ImageEntry struct {
	Rel  string
	Info fs.FileInfo
}

// ImageOptions adjust BuildWorkspaceImage.
type ImageOptions struct {
	// Skip leaves out the paths it reports true for (with what is below).
	Skip func(rel string) bool
	// Dir is called for each directory that goes into the image, the
	// root first (root, ".", ""), before the directory is listed: a
	// change tracker watching it from there sees every later change.
	Dir func(parent *nofollow.Dir, name, rel string)
}

// BuildWorkspaceImage writes into path (created, sparse) a workspace disk
// of mib MiB holding the tree below root, and returns what it holds.
// Guest-side ownership is root's, modes are the host's permission bits.
func BuildWorkspaceImage(ctx context.Context, path string, mib int, root *nofollow.Dir, opts ImageOptions) ([]ImageEntry, error) {
	if err := makeWorkspaceDisk(ctx, path, mib); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(path)
		}
	}()
	var (
		entries []ImageEntry
		cmds    bytes.Buffer
		files   []*os.File
	)
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
		files = files[:0]
	}
	defer closeFiles()
	flush := func() error {
		if cmds.Len() == 0 {
			return nil
		}
		err := debugfs(ctx, path, cmds.Bytes(), files)
		cmds.Reset()
		closeFiles()
		return err
	}
	fmt.Fprintf(&cmds, "mkdir ws\nsif ws mode 040777\n")
	if opts.Dir != nil {
		opts.Dir(root, ".", "")
	}
	err := root.Walk(func(rel string, info fs.FileInfo, parent *nofollow.Dir, werr error) error {
		if werr != nil {
			return nil // an unreadable directory: its contents stay out, as in the sync
		}
		if strings.ContainsAny(rel, "\n\"\x00") || (opts.Skip != nil && opts.Skip(rel)) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		dst := `"ws/` + rel + `"`
		switch {
		case info.IsDir():
			if opts.Dir != nil {
				opts.Dir(parent, info.Name(), rel)
			}
			fmt.Fprintf(&cmds, "mkdir %s\nsif %s mode 0%o\n", dst, dst, 0o40000|uint32(info.Mode().Perm()))
			entries = append(entries, ImageEntry{Rel: rel, Info: info})
		case info.Mode().IsRegular():
			f, fi, err := root.Open(rel)
			if err != nil {
				return nil // gone, or swapped for a symlink or a fifo: left to the sync
			}
			files = append(files, f)
			fd := 2 + len(files) // the child's fd: ExtraFiles start at 3
			fmt.Fprintf(&cmds, "write /dev/fd/%d %s\nsif %s mode 0%o\nsif %s uid 0\nsif %s gid 0\nsif %s mtime @%d\n",
				fd, dst, dst, 0o100000|uint32(fi.Mode().Perm()), dst, dst, dst, fi.ModTime().Unix())
			entries = append(entries, ImageEntry{Rel: rel, Info: fi})
			if len(files) >= imageFDBatch {
				return flush()
			}
		}
		return nil // a symlink or a special file: never followed, never copied
	})
	if err == nil {
		err = writeManifest(&cmds, &files, entries)
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, fmt.Errorf("workspace image: %w", err)
	}
	ok = true
	return entries, nil
}

// writeManifest adds to the image, beside ws/ (out of code's reach), the
// list of what ws/ holds as the guest will find it (proto.ImageManifest),
// so the agent knows its baseline without walking the tree.
func writeManifest(cmds *bytes.Buffer, files *[]*os.File, entries []ImageEntry) error {
	f, err := os.CreateTemp("", "ws-manifest-")
	if err != nil {
		return err
	}
	_ = os.Remove(f.Name()) // debugfs reads it through its fd
	// Directories first: the agent watches them before it mounts the
	// workspace for code, and reads the files' lines in the background.
	var b bytes.Buffer
	for _, e := range entries {
		if e.Info.IsDir() {
			b.WriteString(proto.FormatManifestLine(proto.ManifestEntry{Rel: e.Rel, Dir: true, Perm: uint32(e.Info.Mode().Perm())}))
		}
	}
	for _, e := range entries {
		if e.Info.IsDir() {
			continue
		}
		b.WriteString(proto.FormatManifestLine(proto.ManifestEntry{
			Rel: e.Rel, Perm: uint32(e.Info.Mode().Perm()), Size: e.Info.Size(), Mtime: e.Info.ModTime().Unix(),
		}))
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	*files = append(*files, f)
	fmt.Fprintf(cmds, "write /dev/fd/%d %s\nsif %s mode 0100600\n", 2+len(*files), proto.ImageManifest, proto.ImageManifest)
	return nil
}

// debugfs runs the commands on the image, with files as its fds 3, 4, ...
// debugfs reports a failed command on stderr and still exits 0, so any
// line it prints there besides its banner is an error.
func debugfs(ctx context.Context, image string, cmds []byte, files []*os.File) error {
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", image)
	cmd.Stdin = bytes.NewReader(cmds)
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debugfs (is e2fsprogs installed?): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "debugfs ") {
			return errors.New("debugfs: " + l)
		}
	}
	return nil
}
