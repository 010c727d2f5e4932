package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// OutputRef is one rich output of a step (a plot, a table) as the log
// keeps it: its text, and per other representation the file of the step's
// outputs manifest (Entry.OutputsManifest) holding its bytes.
type OutputRef struct {
	Text  string            `json:"text,omitempty"`
	Files map[string]string `json:"files,omitempty"` // MIME type → output-<n>.<ext>
}

// storeOutputs stores the representations of displays as content-addressed
// objects and names them in one manifest (files output-<n>.<ext>), so
// retention keeps and sweeps them with the session's log like workspace
// snapshots. It returns the manifest id and one ref per display.
func storeOutputs(workspace string, displays []*sdk.Display) (string, []OutputRef, int64, error) {
	w, err := openWriter(workspace)
	if err != nil {
		return "", nil, 0, fmt.Errorf("outputs: %w", err)
	}
	defer w.close()
	objects, manifests := w.objects, w.manifests
	man := &Manifest{Files: []FileEntry{}}
	refs := make([]OutputRef, len(displays))
	var written int64
	for i, d := range displays {
		refs[i].Text = d.Text()
		for _, mime := range d.MIMETypes() {
			if mime == sdk.MIMEText {
				continue
			}
			data := d.Data[mime]
			h, n, err := putObject(objects, data)
			if err != nil {
				return "", nil, written, fmt.Errorf("outputs: %w", err)
			}
			written += n
			name := fmt.Sprintf("output-%d.%s", i+1, sdk.FileExt(mime))
			if refs[i].Files == nil {
				refs[i].Files = map[string]string{}
			}
			refs[i].Files[mime] = name
			man.Files = append(man.Files, FileEntry{Path: name, Type: "file", Mode: 0o644, Size: int64(len(data)), Hash: h})
		}
	}
	if len(man.Files) == 0 {
		return "", refs, written, nil
	}
	id, _, err := writeManifest(manifests, man)
	if err != nil {
		return "", nil, written, fmt.Errorf("outputs: %w", err)
	}
	return id, refs, written, nil
}

// putObject stores data under its sha256 unless the store has it, and
// returns the hash and the bytes written.
func putObject(objects *nofollow.Dir, data []byte) (string, int64, error) {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	if hasObject(objects, h, int64(len(data))) {
		return h, 0, touch(objects, h)
	}
	err := objects.ReplaceFile(h, 0o444, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	})
	if err != nil {
		return "", 0, fmt.Errorf("store object: %w", err)
	}
	return h, int64(len(data)), nil
}

// OutputObjects maps the output files of e (OutputRef.Files' values) to
// their objects' paths in the store.
func OutputObjects(workspace string, e *Entry) (map[string]string, error) {
	if e.OutputsManifest == "" {
		return nil, nil
	}
	man, err := LoadManifest(workspace, e.OutputsManifest)
	if err != nil {
		return nil, fmt.Errorf("outputs of step %d: %w", e.Step, err)
	}
	out := make(map[string]string, len(man.Files))
	for _, f := range man.Files {
		out[f.Path] = ObjectPath(workspace, f.Hash)
	}
	return out, nil
}

// storeWriter is the store opened for writing objects and a manifest:
// the workspace root, its objects and manifests directories (never through
// a symlink), and the store lock held shared until close (see lock.go).
type storeWriter struct {
	root, objects, manifests *nofollow.Dir
	unlock                   func()
}

func openWriter(workspace string) (*storeWriter, error) {
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return nil, err
	}
	w := &storeWriter{root: root, unlock: func() {}}
	if w.objects, err = openStoreDir(root, objectsRel, true); err == nil {
		if w.manifests, err = openStoreDir(root, manifestsRel, true); err == nil {
			w.unlock, err = lockStore(root, unix.LOCK_SH, snapshotLockWait)
		}
	}
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *storeWriter) close() {
	w.unlock()
	for _, d := range []*nofollow.Dir{w.manifests, w.objects, w.root} {
		if d != nil {
			d.Close()
		}
	}
}
