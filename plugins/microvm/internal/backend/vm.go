package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// vm is one running microVM with its agent and current kernel generation.
type vm struct {
	id      string
	dir     string
	m       vmm.Machine
	agent   *agentClient
	release string
	log     hclog.Logger

	gen  uint32
	conn *kernel.Conn // the current generation's channel
	proc *kproc       // the current generation
	// fresh: proc has run nothing yet (a pooled VM's kernel), so a
	// session may take it as its first kernel.
	fresh bool
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

func (b *Backend) vmSpec(id string) vmm.Spec {
	spec := vmm.Spec{
		ID: id, Dir: filepath.Join(b.runDir, id), Image: b.image,
		MemoryMiB: b.cfg.memoryMiB, VCPUs: b.cfg.VCPUs, Accel: b.accel, Logger: b.log.Named("vm-" + id),
	}
	if b.cfg.WorkspaceDisk {
		// Room for ext4's own metadata besides max_workspace of files.
		spec.WorkspaceMiB = int(b.cfg.maxWorkspace>>20)*17/16 + 64
		// A pooled VM takes its session's workspace image on a slot.
		spec.WorkspaceSlot = b.cfg.WorkspaceImage
	}
	return spec
}

// boot launches a VM and waits until its agent answers and a kernel runs.
func (b *Backend) boot(ctx context.Context) (*vm, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.bootTimeout)
	defer cancel()
	id := newID()
	spec := b.vmSpec(id)
	start := time.Now()
	m, err := b.driver.Launch(ctx, spec)
	if err != nil {
		os.RemoveAll(spec.Dir)
		return nil, fmt.Errorf("boot microVM (%s, %s): %w", b.driver.Name(), b.accel, err)
	}
	v := &vm{id: id, dir: spec.Dir, m: m, agent: newAgentClient(m.Agent()), log: b.log}
	if err := v.waitAgent(ctx); err != nil {
		v.destroy()
		return nil, fmt.Errorf("boot microVM (%s, %s): %w", b.driver.Name(), b.accel, err)
	}
	agentReady := time.Since(start)
	if err := v.startKernel(ctx); err != nil {
		v.destroy()
		return nil, fmt.Errorf("boot microVM: %w", err)
	}
	v.fresh = true
	b.log.Debug("vm booted", "vm", id, "agent_ready", agentReady, "kernel_ready", time.Since(start), "accel", b.accel)
	return v, nil
}

// waitAgent pings the agent until it answers, the VM dies or ctx ends.
func (v *vm) waitAgent(ctx context.Context) error {
	type res struct {
		m   *proto.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() {
		r, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpPing})
		ch <- res{r, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("guest agent: %w (vm: %s)", r.err, v.m.Describe())
		}
		v.release = r.m.Release
		return nil
	case <-v.m.Done():
		return fmt.Errorf("the VM stopped before its agent answered (%s)", v.m.Describe())
	case <-ctx.Done():
		return fmt.Errorf("guest agent did not answer: %w (vm: %s)", ctx.Err(), v.m.Describe())
	}
}

// startKernel starts a fresh kernel generation in the guest (the agent
// stops the previous one and what it left running).
func (v *vm) startKernel(ctx context.Context) error {
	gen := v.gen + 1
	r, w := v.agent.openKernel(gen)
	if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpStartKernel, Gen: gen}); err != nil {
		return fmt.Errorf("start kernel in the guest: %w", err)
	}
	v.setKernel(gen, kernel.NewConn(r, w))
	v.fresh = false
	return nil
}

// adoptKernel connects to the kernel generation the VM already runs (a
// restored VM, or one that outlived the plugin process that started it).
func (v *vm) adoptKernel(gen uint32) {
	r, w := v.agent.openKernel(gen)
	v.setKernel(gen, kernel.NewConn(r, w))
}

func (v *vm) setKernel(gen uint32, c *kernel.Conn) {
	v.gen, v.conn = gen, c
	v.proc = newKproc(v, gen, c)
}

func (v *vm) alive() bool {
	select {
	case <-v.m.Done():
		return false
	default:
		return v.agent.alive()
	}
}

// destroyWhy destroys the VM, logging why.
func (v *vm) destroyWhy(why string) {
	v.log.Warn("destroying a microVM", "vm", v.id, "why", why)
	v.destroy()
}

// destroy kills the VM and removes its files.
func (v *vm) destroy() {
	v.m.Kill()
	v.agent.close()
	_ = os.RemoveAll(v.dir)
}
