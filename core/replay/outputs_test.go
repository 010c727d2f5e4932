package replay

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// A step's rich outputs are objects of the store named by a manifest the
// log line refers to: kept with the session, swept with it.
func TestOutputsKeptAndSweptWithTheirSession(t *testing.T) {
	b := newStore(t)
	png := []byte("\x89PNG\r\n\x1a\nplot of old")
	displays := []*sdk.Display{
		{Data: map[string][]byte{sdk.MIMEPNG: png, sdk.MIMEText: []byte("<Figure>")}},
		{Data: map[string][]byte{sdk.MIMEHTML: []byte("<table></table>"), sdk.MIMEText: []byte("df")}},
	}
	id, refs, _, err := storeOutputs(b.ws, displays)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Files[sdk.MIMEPNG] != "output-1.png" || refs[1].Files[sdk.MIMEHTML] != "output-2.html" || refs[0].Text != "<Figure>" {
		t.Fatalf("refs %+v", refs)
	}
	e := &Entry{Outputs: refs, OutputsManifest: id, Backend: "fake"}
	b.step("old", 1, e, 48*time.Hour)
	b.session("new", map[string]string{"a.txt": "a"}, 0)

	objects, err := OutputObjects(b.ws, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(objects["output-1.png"])
	if err != nil || string(got) != string(png) {
		t.Fatalf("the png object: %v %q", err, got)
	}
	// Kept while its session is.
	if _, err := Prune(context.Background(), b.ws, PruneOptions{MinIdle: -1, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(objects["output-1.png"]); err != nil {
		t.Fatalf("a kept session's output was swept: %v", err)
	}
	// Gone with it.
	if _, err := Prune(context.Background(), b.ws, PruneOptions{OlderThan: 24 * time.Hour, MinIdle: -1, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	for name, path := range objects {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s of a removed session is still in the store (%v)", name, err)
		}
	}
	if b.exists("manifests/" + id + ".json") {
		t.Fatal("the outputs manifest of a removed session is still in the store")
	}
}
