package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

const (
	// maxDiffFile caps the files a diff shows as text; larger or binary
	// ones are listed as changed without one.
	maxDiffFile = 256 << 10
	// maxOutputObject caps a rich output read back from the store (the
	// limits.output cap applied when it was recorded is far below).
	maxOutputObject = 64 << 20
)

// WorkspaceDiff is the change of the workspace's files from step From to
// step To (From 0 with no earlier snapshot: everything is added).
type WorkspaceDiff struct {
	Session string       `json:"session"`
	From    int          `json:"from"`
	To      int          `json:"to"`
	Added   []FileChange `json:"added"`
	Removed []FileChange `json:"removed"`
	Changed []FileChange `json:"changed"`
}

// FileChange is one file of a WorkspaceDiff. Diff is a unified diff for
// text files (or the content of an added text file's lines); Binary marks
// files shown without one.
type FileChange struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Diff   string `json:"diff,omitempty"`
	Binary bool   `json:"binary,omitempty"`
}

// diffSteps compares the workspace snapshots of from (nil: empty) and to.
func diffSteps(ws string, from, to *replay.Entry) (*WorkspaceDiff, error) {
	d := &WorkspaceDiff{To: to.Step, Added: []FileChange{}, Removed: []FileChange{}, Changed: []FileChange{}}
	before := map[string]replay.FileEntry{}
	if from != nil {
		d.From = from.Step
		if err := loadFiles(ws, from, before); err != nil {
			return nil, err
		}
	}
	after := map[string]replay.FileEntry{}
	if err := loadFiles(ws, to, after); err != nil {
		return nil, err
	}
	for p, f := range after {
		old, ok := before[p]
		switch {
		case !ok:
			d.Added = append(d.Added, change(ws, p, nil, &f))
		case old.Hash != f.Hash || old.Type != f.Type || old.Target != f.Target:
			d.Changed = append(d.Changed, change(ws, p, &old, &f))
		}
	}
	for p, f := range before {
		if _, ok := after[p]; !ok {
			d.Removed = append(d.Removed, change(ws, p, &f, nil))
		}
	}
	for _, l := range [][]FileChange{d.Added, d.Removed, d.Changed} {
		sort.Slice(l, func(i, j int) bool { return l[i].Path < l[j].Path })
	}
	return d, nil
}

func loadFiles(ws string, e *replay.Entry, into map[string]replay.FileEntry) error {
	if e.WorkspaceSnapshot == "" {
		return nil
	}
	man, err := replay.LoadManifest(ws, e.WorkspaceSnapshot)
	if err != nil {
		return fmt.Errorf("workspace of step %d: %w", e.Step, err)
	}
	for _, f := range man.Files {
		if f.Type != "dir" {
			into[f.Path] = f
		}
	}
	return nil
}

// change describes one file; a text diff when both sides read as UTF-8
// text within maxDiffFile.
func change(ws, path string, old, cur *replay.FileEntry) FileChange {
	c := FileChange{Path: path}
	a, okA := fileText(ws, old)
	b, okB := fileText(ws, cur)
	if cur != nil {
		c.Size = cur.Size
	} else if old != nil {
		c.Size = old.Size
	}
	if !okA || !okB {
		c.Binary = true
		return c
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: "a/" + path, ToFile: "b/" + path, Context: 3,
	})
	if err != nil {
		c.Binary = true
		return c
	}
	c.Diff = text
	return c
}

// fileText is f's content when it is a text file within maxDiffFile
// (true for no file at all: an empty side of the diff).
func fileText(ws string, f *replay.FileEntry) (string, bool) {
	if f == nil {
		return "", true
	}
	if f.Type == "symlink" {
		return "-> " + f.Target + "\n", true
	}
	if f.Type != "file" || f.Size > maxDiffFile {
		return "", false
	}
	b, err := readObject(ws, f.Hash, maxDiffFile)
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// readObject reads a store object without following a symlink (the store
// is in the workspace, which sandbox code writes) and checks it is what
// its name says.
func readObject(ws, hash string, limit int64) ([]byte, error) {
	if len(hash) != 64 {
		return nil, fmt.Errorf("bad object name %q", hash)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return nil, fmt.Errorf("bad object name %q", hash)
	}
	root, err := nofollow.OpenRoot(ws)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", hash[:12], err)
	}
	defer root.Close()
	f, fi, err := root.Open(replay.Dir + "/objects/" + hash)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", hash[:12], err)
	}
	defer f.Close()
	if !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, fmt.Errorf("object %s: not a regular file within %d bytes", hash[:12], limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", hash[:12], err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("object %s: content does not match its name", hash[:12])
	}
	return b, nil
}
