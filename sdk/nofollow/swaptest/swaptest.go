// Package swaptest plays the neighbour that the nofollow rules defend
// against in tests: another session sharing a workspace that keeps swapping
// an entry for a symlink leading out of it.
package swaptest

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Exchange swaps dir/name with a symlink to target, over and over, until
// the returned stop is called. RENAME_EXCHANGE is atomic, so dir/name is
// always one or the other; the link waits at dir/name+".alt" in between.
// A moment when dir/name does not exist (code under test replacing it) is
// skipped. Exchange returns once a hundred swaps have happened, so the race
// is on when the caller starts reading.
func Exchange(t testing.TB, dir, name, target string) (stop func()) {
	t.Helper()
	alt := filepath.Join(dir, name+".alt")
	if err := os.Symlink(target, alt); err != nil {
		t.Fatalf("swaptest: %v", err)
	}
	done, started := make(chan struct{}), make(chan struct{})
	running := sync.OnceFunc(func() { close(started) })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer running()
		for n := 0; ; n++ {
			if n == 100 {
				running()
			}
			select {
			case <-done:
				return
			default:
			}
			err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, name), unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("swaptest: swap %s: %v", name, err)
				return
			}
		}
	}()
	<-started
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
