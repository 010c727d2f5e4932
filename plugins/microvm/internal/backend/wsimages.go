package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
)

// wsImages keeps, for each workspace a session was attached to, one
// prebuilt workspace disk image (vmm.BuildWorkspaceImage) for the next
// session's attach: a pooled VM's disk is pointed at it, so the session's
// first execution waits for no file transfer. A session takes the image
// (it becomes its VM's disk) and a replacement is built refillDelay later
// in the background; the first session of a workspace waits for a build.
// An image may be stale by the time it is taken: the attach's push
// compares the workspace with the image's manifest and sends only the
// difference, so staleness costs time, never correctness.
type wsImages struct {
	runDir string
	log    hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	build  sync.Mutex // one build at a time: they read and write whole workspaces

	mu     sync.Mutex
	ready  map[imageKey]*wsImage
	wg     sync.WaitGroup
	closed bool
}

// imageKey: an image fits VMs whose disk has its size.
type imageKey struct {
	dir string
	mib int
}

// wsImage is one image being built or built.
type wsImage struct {
	done    chan struct{}
	path    string
	entries []vmm.ImageEntry
	// w watches the workspace's directories since before the build
	// listed them (nil if inotify failed): what changed since is what
	// the attach sends, without walking the workspace.
	w   *watch.Set
	err error
}

func newWSImages(runDir string, log hclog.Logger) *wsImages {
	ctx, cancel := context.WithCancel(context.Background())
	return &wsImages{runDir: runDir, log: log, ctx: ctx, cancel: cancel, ready: map[imageKey]*wsImage{}}
}

// take returns an image of the workspace at dir for a disk of mib MiB,
// now the caller's (it removes or moves its file), and schedules the next.
func (c *wsImages) take(ctx context.Context, dir string, mib int) (*wsImage, error) {
	k := imageKey{dir, mib}
	c.mu.Lock()
	img := c.ready[k]
	delete(c.ready, k)
	c.mu.Unlock()
	if img == nil {
		img = c.start(k, 0)
	}
	c.schedule(k)
	select {
	case <-img.done:
	case <-ctx.Done():
		go func() { <-img.done; img.discard() }()
		return nil, ctx.Err()
	}
	if img.err != nil {
		return nil, img.err
	}
	return img, nil
}

// schedule builds an image of k after refillDelay, unless one is kept.
func (c *wsImages) schedule(k imageKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ready[k] != nil {
		return
	}
	c.ready[k] = c.start(k, refillDelay)
}

// start builds an image of k in the background after delay.
func (c *wsImages) start(k imageKey, delay time.Duration) *wsImage {
	img := &wsImage{done: make(chan struct{}), path: filepath.Join(c.runDir, "wsimage-"+newID()+".img")}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(img.done)
		select {
		case <-time.After(delay):
		case <-c.ctx.Done():
			img.err = c.ctx.Err()
			return
		}
		c.build.Lock()
		defer c.build.Unlock()
		start := time.Now()
		img.entries, img.w, img.err = buildImage(c.ctx, img.path, k, c.log)
		if img.err != nil {
			c.log.Warn("workspace image not built: sessions get the files over the agent channel", "workspace", k.dir, "error", img.err)
			return
		}
		c.log.Debug("workspace image built", "workspace", k.dir, "entries", len(img.entries), "took", time.Since(start))
	}()
	return img
}

func buildImage(ctx context.Context, path string, k imageKey, log hclog.Logger) ([]vmm.ImageEntry, *watch.Set, error) {
	root, err := nofollow.OpenRoot(k.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read workspace %s: %w", k.dir, err)
	}
	defer root.Close()
	w, err := watch.New()
	if err != nil {
		log.Debug("workspace image without change tracking: the attach walks the workspace", "error", err)
	}
	opts := vmm.ImageOptions{Skip: sdk.HostOwned}
	if w != nil {
		opts.Dir = func(parent *nofollow.Dir, name, rel string) {
			if w != nil && w.AddAt(parent, name, rel) != nil {
				w.Close()
				w = nil
			}
		}
	}
	entries, err := vmm.BuildWorkspaceImage(ctx, path, k.mib, root, opts)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return entries, w, nil
}

// discard removes the image's file (one that was not given to a VM) and
// its change tracking.
func (img *wsImage) discard() {
	_ = os.Remove(img.path)
	img.w.Close()
}

// cost is what the image holds, counted as the workspace sync counts it.
func (img *wsImage) cost() int64 {
	var n int64
	for _, e := range img.entries {
		n += stateOf(e.Info).cost()
	}
	return n
}

// close stops builds and removes the images kept.
func (c *wsImages) close() {
	c.mu.Lock()
	c.closed = true
	kept := c.ready
	c.ready = map[imageKey]*wsImage{}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	for _, img := range kept {
		img.discard()
	}
}
