package backend

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// kproc is one kernel generation in a VM, as a kernel.Session sees it:
// its channel is relayed by the guest agent, it is interrupted and stopped
// through the agent, and it ends with the agent's exit report for it or
// with the VM.
type kproc struct {
	v    *vm
	gen  uint32
	conn *kernel.Conn
	done chan struct{}
	exit kernel.Exit // valid once done is closed
	kill sync.Mutex  // serialises Kill
}

func newKproc(v *vm, gen uint32, c *kernel.Conn) *kproc {
	p := &kproc{v: v, gen: gen, conn: c, done: make(chan struct{})}
	go p.watch()
	return p
}

// watch closes done when the generation's exit report comes, or when the
// VM stops (agent channel closed, VMM exited) without one.
func (p *kproc) watch() {
	select {
	case <-p.v.agent.exitNotify(p.gen):
		p.exit = exitReport(p.v.agent.exitOf(p.gen))
		close(p.done)
		return
	case <-p.v.agent.done:
	case <-p.v.m.Done():
	}
	// The exit report may have raced the end of the channel.
	if m := p.v.agent.exitOf(p.gen); m != nil {
		p.exit = exitReport(m)
		close(p.done)
		return
	}
	// Give the VMM a moment to exit, so its description says why.
	select {
	case <-p.v.m.Done():
	case <-time.After(3 * time.Second):
	}
	p.exit = kernel.Exit{Code: 1, Reason: "the microVM stopped: " + p.v.m.Describe(), SandboxLost: true}
	close(p.done)
}

// exitReport turns the agent's kernel_exit report into an Exit.
func exitReport(m *proto.Msg) kernel.Exit {
	if m.Signal > 0 {
		ex := kernel.SignalExit(syscall.Signal(m.Signal), m.Tail)
		if m.Status != "" {
			ex.Reason = m.Status
		}
		return ex
	}
	return kernel.Exit{Code: m.ExitCode, Reason: m.Status, Tail: m.Tail}
}

// Conn implements kernel.Process.
func (p *kproc) Conn() *kernel.Conn { return p.conn }

// Done implements kernel.Process.
func (p *kproc) Done() <-chan struct{} { return p.done }

// Exit implements kernel.Process.
func (p *kproc) Exit() kernel.Exit { return p.exit }

// Interrupt implements kernel.Process: the agent sends SIGINT to this
// generation (and refuses when another one runs).
func (p *kproc) Interrupt() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := p.v.agent.call(ctx, &proto.Msg{Op: proto.OpInterrupt, Gen: p.gen}); err != nil {
		return fmt.Errorf("interrupt kernel %d: %w", p.gen, err)
	}
	return nil
}

// Kill implements kernel.Process: the agent kills the generation and the
// processes of the sandbox; a VM whose agent does not do that in time is
// destroyed. The VM itself stays for the session's next kernel.
func (p *kproc) Kill(ctx context.Context) {
	p.kill.Lock()
	defer p.kill.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := p.v.agent.call(sctx, &proto.Msg{Op: proto.OpStopKernel, Gen: p.gen})
	cancel()
	if err == nil {
		select {
		case <-p.done:
			return
		case <-time.After(5 * time.Second):
			err = fmt.Errorf("no exit report for kernel %d", p.gen)
		}
	}
	p.v.destroyWhy(fmt.Sprintf("the guest did not stop kernel %d: %v", p.gen, err))
	<-p.done
}
