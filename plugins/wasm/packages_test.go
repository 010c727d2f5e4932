package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

// launchWith starts the plugin configured with the given packages; it
// returns the plugin and Configure's error.
func launchWith(t *testing.T, packages []string) (*host.Plugin, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, pluginPath(t))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Kill)
	cfg := map[string]any{"packages": packages}
	if e := os.Getenv("MCPRUNTIME_WASM_ENGINE"); e != "" {
		cfg["engine"] = e
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: testenv.StateDir(t)})
}

// TestPackagesPillow runs Pillow in the interpreter that `packages =
// ["pillow"]` selects: its C modules are built in under dotted names, and
// what it draws is saved to and read back from the workspace.
func TestPackagesPillow(t *testing.T) {
	p, err := launchWith(t, []string{"pillow"})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	ws := t.TempDir()
	id := newSession(t, p, sdk.SessionSpec{Workspace: ws})
	expectOK(t, p, id, `
import sys
from PIL import Image, ImageDraw, ImageFilter
im = Image.new("RGB", (64, 32), "white")
ImageDraw.Draw(im).rectangle((4, 4, 40, 20), fill=(255, 0, 0))
im.save("/workspace/box.png")
back = Image.open("/workspace/box.png")
print(back.size, back.getpixel((10, 10)), back.getpixel((50, 25)))
print(sorted(m for m in sys.builtin_module_names if m.startswith("PIL.")))
`, "(64, 32) (255, 0, 0) (255, 255, 255)\n['PIL._imaging', 'PIL._imagingmath', 'PIL._imagingmorph']\n")
	png, err := os.ReadFile(filepath.Join(ws, "box.png"))
	if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("box.png is not a PNG: %v %.8q", err, png)
	}
	// The methods python/packages.sh gives a second parameter: called
	// through a two-argument pointer, their one-parameter originals trap.
	expectOK(t, p, id, `
import pickle
g = im.convert("L")
print(g.getextrema(), len(im.split()), pickle.loads(pickle.dumps(im)).getpixel((10, 10)))
print(im.filter(ImageFilter.BoxBlur(1)).getpixel((4, 4)) != (255, 0, 0))
`, "(76, 255) 3 (255, 0, 0)\nTrue\n")
}

// TestPackagesNotBuilt: a package no build has fails at configure time with
// the reason and the backend that has it, and the default interpreter has
// no packages.
func TestPackagesNotBuilt(t *testing.T) {
	_, err := launchWith(t, []string{"pandas"})
	if err == nil || !strings.Contains(err.Error(), `"pandas" is not in this build`) || !strings.Contains(err.Error(), "opensandbox") {
		t.Fatalf("packages = [\"pandas\"]: configure error = %v", err)
	}
	p, err := launchWith(t, nil)
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	id := newSession(t, p, sdk.SessionSpec{})
	expectOK(t, p, id, `
try:
    import PIL.Image
except ImportError as e:
    print(type(e).__name__)
`, "ModuleNotFoundError\n")
}
