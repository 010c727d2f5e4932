package rootfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// CompileBytecode precompiles the Python sources under dirs (absolute
// paths inside root) with root's own /usr/bin/python3, run in a chroot
// (so it needs root privileges). The bytecode is "unchecked-hash": a
// read-only root never changes, so the interpreter need not compare
// sources at import. Each tree gets its own process, since compileall -j
// needs POSIX semaphores a bare root lacks. An error names the trees in
// which some file did not compile; the others are compiled all the same.
func CompileBytecode(ctx context.Context, root string, dirs ...string) error {
	env := []string{"PATH=/usr/bin", "LANG=C.UTF-8"}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := runEnv(ctx, "", env, "chroot", root, "/usr/bin/python3", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", d); err != nil {
				errs[i] = fmt.Errorf("compile %s: %w", d, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
