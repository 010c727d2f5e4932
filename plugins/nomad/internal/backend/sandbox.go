package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// sandbox is one allocation running a kernel. It is the kernel.Process of
// the session that holds it: a kernel that ends ends its allocation, and a
// new kernel is a new allocation.
type sandbox struct {
	e       *engine
	jobID   string
	alloc   *api.Allocation
	session string // set when claimed (or placed for a session)
	k       *channel

	killOnce sync.Once
	// stopped: its job was purged by this process (a channel that ends
	// then says nothing about the node).
	stopped atomic.Bool
}

// channel is the kernel's framed channel over one alloc exec stream
// running the relay (see guest/relay.py).
type channel struct {
	conn   *kernel.Conn
	cancel context.CancelFunc
	done   chan struct{}
	stderr *sdk.TailWriter
	// established: the kernel answered; only then is the end of the
	// stream worth explaining (asked of Nomad before done closes, while
	// the allocation's state is fresh and before anyone stops it).
	established atomic.Bool
	code        int
	err         error
	exit        kernel.Exit // valid once done is closed
}

// kernelAnswerTimeout bounds the wait for a kernel's answer when the
// caller gave no deadline.
const kernelAnswerTimeout = 30 * time.Second

// connect starts the relay in the allocation and waits until the kernel
// answers a ping.
func (sb *sandbox) connect(ctx context.Context) (*channel, error) {
	sctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ch := &channel{cancel: cancel, done: make(chan struct{}), stderr: &sdk.TailWriter{Max: 4096}}
	cmd := []string{sb.e.s.Python, "-I", "-S", "-c", relaySource, kernelDir}
	go func() {
		code, err := sb.e.c.Allocations().Exec(sctx, sb.alloc, taskName, false, cmd, inR, outW, ch.stderr, nil, sb.e.qopts(sctx))
		// Unblock the Conn's reader and any writer.
		outW.CloseWithError(io.EOF)
		inR.CloseWithError(io.ErrClosedPipe)
		ch.code, ch.err = code, err
		if ch.established.Load() {
			ch.exit = sb.exitOf(code, err, ch.stderr.String())
		} else {
			ch.exit = kernel.Exit{Code: 1, Reason: fmt.Sprintf("the kernel's channel did not open (%v, exit status %d)", err, code), SandboxLost: true}
		}
		close(ch.done)
	}()
	ch.conn = kernel.NewConn(outR, inW)
	// The kernel may still be starting (twenty allocations starting at
	// once on a loaded node take tens of seconds): wait as long as the
	// caller's budget (the placement timeout) allows, and a bounded time
	// when the caller set none. A channel that ends fails the ping at once.
	wctx, wcancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wctx, wcancel = context.WithTimeout(ctx, kernelAnswerTimeout)
	}
	defer wcancel()
	t0 := time.Now()
	// A ping, not the kernel's ready announcement: a relay of an earlier
	// attempt (or process) may have read that. Frames before the pong are
	// skipped.
	err := ch.conn.Ping(wctx)
	ch.established.Store(err == nil)
	if err != nil {
		cancel()
		<-ch.done
		return nil, fmt.Errorf("kernel in allocation %s on node %s, after %s: %w (channel: %v, exit status %d)", shortID(sb.alloc.ID), sb.alloc.NodeName, time.Since(t0).Round(time.Millisecond), err, ch.err, ch.code)
	}
	sb.e.log.Debug("kernel answered", "alloc", shortID(sb.alloc.ID), "node", sb.alloc.NodeName, "took", time.Since(t0))
	return ch, nil
}

// exitOf says how the kernel's channel ended: the task's end as Nomad
// recorded it (exit status, the OOM killer), or the node's loss.
func (sb *sandbox) exitOf(code int, streamErr error, tail string) kernel.Exit {
	if sb.stopped.Load() {
		return kernel.Exit{Code: 1, Reason: "the session's allocation was stopped", Tail: tail, SandboxLost: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	where := fmt.Sprintf("allocation %s on node %s", shortID(sb.alloc.ID), sb.alloc.NodeName)
	// The task's state reaches the server a moment after the stream ends
	// (client batching): wait briefly for it.
	var a *api.Allocation
	start := time.Now()
	for {
		var err error
		a, _, err = sb.e.c.Allocations().Info(sb.alloc.ID, sb.e.qopts(ctx))
		if err != nil || ctx.Err() != nil {
			break
		}
		if ts := a.TaskStates[taskName]; ts != nil && ts.State == taskStateDead {
			ex := taskExit(ts, tail)
			ex.Reason += " (" + where + ")"
			return ex
		}
		if a.ClientStatus == api.AllocClientStatusLost || a.ClientStatus == api.AllocClientStatusUnknown {
			break
		}
		if node, _, err := sb.e.c.Nodes().Info(a.NodeID, sb.e.qopts(ctx)); err == nil && node.Status != api.NodeStatusReady {
			return kernel.Exit{Code: 1, Reason: fmt.Sprintf("node %s of %s is %s", node.Name, where, node.Status), Tail: tail, SandboxLost: true}
		}
		if streamErr != nil && time.Since(start) > time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The node may be dying while the servers still list it as ready
	// (they notice after the heartbeat grace): keep new placements off it
	// for a while.
	sb.e.suspect(sb.alloc.NodeID)
	reason := fmt.Sprintf("the kernel's channel to %s ended", where)
	if streamErr != nil {
		reason += ": " + streamErr.Error()
	} else {
		reason += fmt.Sprintf(" (relay exit status %d)", code)
	}
	if a != nil {
		reason += fmt.Sprintf("; allocation %s", a.ClientStatus)
	}
	return kernel.Exit{Code: 1, Reason: reason, Tail: tail, SandboxLost: true}
}

// taskExit reads a dead task's end from its events.
func taskExit(ts *api.TaskState, tail string) kernel.Exit {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		ev := ts.Events[i]
		if ev.Type != api.TaskTerminated {
			continue
		}
		if ev.Details["oom_killed"] == "true" {
			return kernel.Exit{Code: 137, Signal: 9, Reason: "killed by the out-of-memory killer (the allocation's memory limit)", Tail: tail}
		}
		ex := kernel.CodeExit(ev.ExitCode, tail)
		if ev.Signal > 0 {
			ex = kernel.SignalExit(syscall.Signal(ev.Signal), tail)
		}
		return ex
	}
	return kernel.Exit{Code: 1, Reason: "the task ended: " + taskEvents(ts), Tail: tail}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Conn implements kernel.Process.
func (sb *sandbox) Conn() *kernel.Conn { return sb.k.conn }

// Interrupt implements kernel.Process: SIGINT to the task's init, which
// forwards it to the kernel.
func (sb *sandbox) Interrupt() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sb.e.c.Allocations().Signal(sb.alloc, sb.e.qopts(ctx), taskName, "SIGINT"); err != nil {
		return fmt.Errorf("interrupt kernel in allocation %s: %w", shortID(sb.alloc.ID), err)
	}
	return nil
}

// killLeftovers asks init to kill every process of the task but the
// kernel and the relay (what timed-out code left running).
func (sb *sandbox) killLeftovers(ctx context.Context) error {
	if err := sb.e.c.Allocations().Signal(sb.alloc, sb.e.qopts(ctx), taskName, "SIGUSR1"); err != nil {
		return fmt.Errorf("kill leftover processes in allocation %s: %w", shortID(sb.alloc.ID), err)
	}
	return nil
}

// Kill implements kernel.Process: stop and purge the job, close the
// channel. It returns once the channel has ended.
func (sb *sandbox) Kill(ctx context.Context) {
	sb.stop()
	if sb.k == nil {
		return
	}
	// The task's end closes the stream; a dead node's never does.
	select {
	case <-sb.k.done:
		return
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	sb.k.cancel()
	<-sb.k.done
}

// stop purges the sandbox's job (once) without waiting for its end.
func (sb *sandbox) stop() {
	sb.killOnce.Do(func() {
		sb.stopped.Store(true)
		sb.e.forget(sb)
		sb.e.purge(sb.jobID)
		if sb.session != "" {
			sb.e.unrecord(sb.jobID)
		}
	})
}

// Done implements kernel.Process.
func (sb *sandbox) Done() <-chan struct{} { return sb.k.done }

// Exit implements kernel.Process.
func (sb *sandbox) Exit() kernel.Exit { return sb.k.exit }

func (sb *sandbox) alive() bool {
	select {
	case <-sb.k.done:
		return false
	default:
		return true
	}
}

// errNoKernel is returned by a transport asked for a kernel after close.
var errNoKernel = errors.New("session closed")
