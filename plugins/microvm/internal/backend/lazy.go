package backend

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// Large workspace files go into the guest in the background: the push
// creates a placeholder of the right size (one round trip) and a filler
// goroutine sends the content afterwards, while code already runs. Code
// in the guest that opens the file waits until the content is complete
// (see the agent's lazy.go), so a new session's first execution does not
// wait for a 200 MB file it does not read.

const (
	// lazyMin is the smallest file sent in the background.
	lazyMin = 1 << 20
	// fillChunk is the piece size of background transfers: small enough
	// that an execution's own requests are not held up long behind one.
	fillChunk = 1 << 20
)

// pendingIDs numbers placeholders (unique per plugin process, so ids of an
// abandoned filler never match a newer placeholder).
var pendingIDs atomic.Uint64

type fillJob struct {
	id  uint64
	rel string
}

// filler sends the content of placeholders to one VM's agent, in order.
type filler struct {
	s      *syncer
	a      *agentClient
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  []fillJob
	active bool // a goroutine is draining the queue
	idle   chan struct{}
}

func newFiller(s *syncer, a *agentClient) *filler {
	ctx, cancel := context.WithCancel(context.Background())
	f := &filler{s: s, a: a, ctx: ctx, cancel: cancel, idle: make(chan struct{})}
	close(f.idle)
	return f
}

// add queues a placeholder's content.
func (f *filler) add(j fillJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, j)
	if !f.active {
		f.active = true
		f.idle = make(chan struct{})
		go f.run()
	}
}

// done is closed when nothing is queued or being sent.
func (f *filler) done() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idle
}

func (f *filler) stop() { f.cancel() }

func (f *filler) run() {
	for {
		f.mu.Lock()
		if len(f.queue) == 0 || f.ctx.Err() != nil {
			f.queue, f.active = nil, false
			close(f.idle)
			f.mu.Unlock()
			return
		}
		j := f.queue[0]
		f.queue = f.queue[1:]
		f.mu.Unlock()
		if err := f.send(j); err != nil && f.ctx.Err() == nil {
			if errors.Is(err, errVMGone) {
				// The VM went (destroyed, or died: the session's next
				// execution gets a new one, pushed from scratch).
				f.s.log.Debug("background workspace transfer stopped", "file", j.rel, "error", err)
				f.cancel()
				continue
			}
			f.s.log.Warn("background workspace transfer failed", "file", j.rel, "error", err)
		}
	}
}

// send fills placeholder j with the host file's content as it is now
// (opened without following symlinks), or abandons it if the file is gone
// or no longer a regular file: the guest removes the placeholder, and the
// change's own event brings the rest at the next push.
func (f *filler) send(j fillJob) error {
	call := func(m *proto.Msg) error {
		m.Op, m.Tree, m.Pending = proto.OpFill, f.s.tree, j.id
		_, err := f.a.call(f.ctx, m)
		return err
	}
	root, err := nofollow.OpenRoot(f.s.dir)
	if err != nil {
		return call(&proto.Msg{Final: true, Length: -1})
	}
	defer root.Close()
	file, fi, err := root.Open(j.rel)
	if err != nil {
		if skippable(err) {
			return call(&proto.Msg{Final: true, Length: -1})
		}
		return err
	}
	defer file.Close()
	size := fi.Size()
	err = forExtents(file, size, fillChunk, func(off int64, data []byte) error {
		return call(&proto.Msg{Offset: off, Data: data})
	})
	if err != nil {
		if strings.Contains(err.Error(), "no pending file") {
			return nil // sent again or removed since: a newer job has it
		}
		return err
	}
	return call(&proto.Msg{Final: true, Length: size, Mode: uint32(fi.Mode().Perm())})
}

// placeholder has the guest create rel as a placeholder and queues its
// content; false if the guest cannot (the caller sends the file whole).
func (s *syncer) placeholder(ctx context.Context, a *agentClient, rel string, size int64, mode uint32) (bool, error) {
	if !s.lazy || s.noLazy {
		return false, nil
	}
	id := pendingIDs.Add(1)
	_, err := a.call(ctx, &proto.Msg{Op: proto.OpPlaceholder, Tree: s.tree, Path: s.guest(rel), Length: size, Mode: mode, Pending: id})
	if err != nil {
		if errors.Is(err, errVMGone) {
			return false, err
		}
		s.noLazy = true
		s.log.Info("large workspace files are sent whole", "why", err)
		return false, nil
	}
	if s.fill == nil || s.fill.a != a {
		s.fill.stopIfAny()
		s.fill = newFiller(s, a)
	}
	s.fill.add(fillJob{id: id, rel: rel})
	return true, nil
}

func (f *filler) stopIfAny() {
	if f != nil {
		f.stop()
	}
}
