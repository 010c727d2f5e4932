package rootfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// MatplotlibCacheDir is where an image keeps matplotlib's font list, built
// once at image build (MatplotlibFontCache). The sdk kernel copies it into
// a session's matplotlib cache directory before matplotlib's first import:
// without it, that import scans every font of the image (~60 ms on
// opensandbox, ~0.6 s in a microVM under TCG), in every new sandbox, since
// each starts with an empty home.
const MatplotlibCacheDir = "/usr/share/mcpruntime/matplotlib"

// MatplotlibFontCache builds matplotlib's font list into
// MatplotlibCacheDir of root, with root's own python3 run in a chroot (so
// it needs root privileges). A root without matplotlib is left as it is.
// The list names the fonts by their paths in root, which are theirs in
// the sandbox too.
func MatplotlibFontCache(ctx context.Context, root string) error {
	pkgs, err := filepath.Glob(filepath.Join(root, "usr/lib/python3*/*-packages/matplotlib"))
	if err != nil || len(pkgs) == 0 {
		return err
	}
	dir := filepath.Join(root, MatplotlibCacheDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("matplotlib font cache: %w", err)
	}
	env := []string{"PATH=/usr/bin", "LANG=C.UTF-8", "MPLCONFIGDIR=" + MatplotlibCacheDir, "HOME=/nonexistent"}
	if _, err := runEnv(ctx, "", env, "chroot", root, "/usr/bin/python3", "-c", "import matplotlib.font_manager"); err != nil {
		return fmt.Errorf("matplotlib font cache: %w", err)
	}
	lists, err := filepath.Glob(filepath.Join(dir, "fontlist-*.json"))
	if err != nil || len(lists) == 0 {
		return fmt.Errorf("matplotlib font cache: no font list in %s (%v)", MatplotlibCacheDir, err)
	}
	for _, l := range lists {
		if err := os.Chmod(l, 0o644); err != nil {
			return fmt.Errorf("matplotlib font cache: %w", err)
		}
	}
	return nil
}
