package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// sweep removes what plugin processes that are gone left in the namespace
// (containers, tasks, slots), e.g. after a kill -9. Containers of plugin
// processes that still run are theirs and are left alone, so several
// plugins may share a namespace.
func (e *engine) sweep(ctx context.Context) {
	live := map[string]bool{}
	ctrs, err := e.client.Containers(ctx)
	if err != nil {
		e.log.Warn("sweep: list containers", "error", err)
		return
	}
	removed := 0
	for _, c := range ctrs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		if owner := labels[labelOwner]; owner != "" && ownerAlive(owner) {
			live[c.ID()] = true
			continue
		}
		removeContainer(ctx, c)
		removed++
	}
	entries, _ := os.ReadDir(e.slots)
	for _, d := range entries {
		if !live[d.Name()] {
			if err := removeSlot(filepath.Join(e.slots, d.Name())); err != nil {
				e.log.Warn("sweep: remove slot", "slot", d.Name(), "error", err)
			}
		}
	}
	// FIFO directories are per plugin process (see newEngine).
	fifoRoot := filepath.Dir(e.fifos)
	fifos, _ := os.ReadDir(fifoRoot)
	for _, d := range fifos {
		if !ownerAlive(strings.Replace(d.Name(), "-", ":", 1)) {
			os.RemoveAll(filepath.Join(fifoRoot, d.Name()))
		}
	}
	if removed > 0 {
		e.log.Info("swept leftover containers of dead plugin processes", "count", removed, "namespace", e.s.Namespace)
	}
}

// removeContainer kills and deletes a container's task, then the container.
func removeContainer(ctx context.Context, c client.Container) {
	if t, err := c.Task(ctx, nil); err == nil {
		_ = t.Kill(ctx, syscall.SIGKILL)
		if ch, err := t.Wait(ctx); err == nil {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
			}
		}
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			_, _ = t.Delete(ctx, client.WithProcessKill)
		}
	}
	_ = c.Delete(ctx)
}
