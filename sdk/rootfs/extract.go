package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Extract unpacks the files of debs into dir (no maintainer scripts). A
// few run at once: dpkg-deb is bound by decompression, and packages of one
// closure do not share files (dpkg refuses that without Replaces), so the
// order does not matter.
func Extract(ctx context.Context, dir string, debs ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	sem := make(chan struct{}, min(runtime.NumCPU(), 4))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, deb := range debs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := run(ctx, "", "dpkg-deb", "-x", deb, dir); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("extract %s: %w", filepath.Base(deb), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
