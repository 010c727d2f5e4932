package image

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// buildInitramfs packs /init (the agent), /dev/console and the modules.
func buildInitramfs(kdir string, agent []byte, out string) error {
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	for _, d := range []string{"dev", "proc", "sys", "newroot", "lib", "lib/modules"} {
		c.Dir(d)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, agent)
	order, err := os.ReadFile(filepath.Join(kdir, "modules", "order"))
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	c.File("lib/modules/order", 0o644, order)
	for _, m := range strings.Fields(string(order)) {
		b, err := os.ReadFile(filepath.Join(kdir, "modules", m+".ko"))
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		c.File("lib/modules/"+m+".ko", 0o644, b)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
