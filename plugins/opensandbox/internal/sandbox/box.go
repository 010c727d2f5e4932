package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Labels on the containers this backend creates.
const (
	// labelInstance is the owner id of the plugin process that created the
	// container (see sweep.go).
	labelInstance = "mcpruntime.opensandbox/instance"
	// labelOwner ("pid:start-time") named the creator before owner ids;
	// only the sweep still reads it.
	labelOwner = "mcpruntime.opensandbox/owner"
	labelRole  = "mcpruntime.opensandbox/role"
	// shimGroupAnnotation is read by containerd's runc v2 shim from the
	// OCI spec's annotations (not from container labels): containers with
	// the same value share one shim process.
	shimGroupAnnotation = "io.containerd.runc.v2.group"
)

// box is one sandbox container and the kernel task running in it.
type box struct {
	e    *engine
	id   string
	slot slotPaths
	cg   cgroup
	ctr  client.Container
	lim  limits // what the cgroup is set to

	k *kernelTask // current kernel; replaced when it dies
}

// kernelTask is one run of the kernel as the container's init process.
type kernelTask struct {
	task client.Task
	pid  int // host pid of the container's init
	// kernelPid is the kernel's pid inside the container.
	kernelPid int
	conn      *kernel.Conn
	stdin     io.WriteCloser
	done      chan struct{}
	// valid once done is closed
	code   uint32
	oom    bool
	stderr *sdk.TailWriter
}

func (k *kernelTask) alive() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// ExitCode makes the task usable with kernel.KernelDied.
func (k *kernelTask) ExitCode() int { return int(k.code) }

func (k *kernelTask) status() string {
	switch {
	case k.oom:
		return "killed by the out-of-memory killer: the session's memory limit was reached"
	case k.code > 128:
		return fmt.Sprintf("killed by signal %s", syscall.Signal(k.code-128))
	default:
		return fmt.Sprintf("exit status %d", k.code)
	}
}

// interrupt delivers SIGINT to the kernel (KeyboardInterrupt in the cell)
// through init, which forwards it. The plugin runs in the host's pid
// namespace, so signalling the task's host pid directly avoids a round
// trip through the shim and runc.
func (k *kernelTask) interrupt() error {
	if err := syscall.Kill(k.pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("interrupt kernel: %w", err)
	}
	return nil
}

func (k *kernelTask) kill() {
	if k.alive() {
		_ = syscall.Kill(k.pid, syscall.SIGKILL)
	}
}

// scoped puts the plugin's namespace on a request's context. The client's
// default namespace is not enough: a caller's context may carry a
// containerd namespace in its incoming gRPC metadata, which the client
// then takes as set while sending none.
func (e *engine) scoped(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.s.Namespace)
}

// newBox creates a container and starts its kernel with the engine's
// default limits; it serves no session yet.
func (e *engine) newBox(ctx context.Context) (_ *box, err error) {
	ctx = e.scoped(ctx)
	// The anchor starts the process's shim. A container started at the
	// same moment would start it a second time, and the two shim starts
	// race: one can remove the socket the other just made ("create new
	// shim socket: chmod …: no such file or directory"). Seen in the cold
	// path conformance run, whose first session follows Configure at once.
	if e.anchorDone != nil {
		select {
		case <-e.anchorDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	id := fmt.Sprintf("osb-%s-%d", e.owner, seq.Add(1))
	b := &box{e: e, id: id, slot: slotPaths{root: filepath.Join(e.slots, id)}, lim: e.defaults,
		cg: cgroup{path: cgroupParent + "/" + id, v2: unifiedCgroups()}}
	defer func() {
		if err != nil {
			b.destroy(context.WithoutCancel(ctx))
		}
	}()
	for _, d := range []string{b.slot.workspace(), b.slot.lib(), b.slot.state()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("container slot: %w", err)
		}
	}
	if err := os.Chown(b.slot.state(), image.SandboxUID, image.SandboxUID); err != nil {
		return nil, fmt.Errorf("container slot: %w", err)
	}
	t0 := time.Now()
	b.ctr, err = e.client.NewContainer(ctx, id,
		client.WithSnapshotter(e.s.Snapshotter),
		client.WithSnapshot(e.rootKey),
		client.WithRuntime(e.rt.shim, e.rt.options(e.runcRoot)),
		client.WithContainerLabels(map[string]string{labelInstance: e.owner, labelRole: "sandbox"}),
		client.WithNewSpec(e.specOpts(id, b.slot, b.lim)...),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	e.log.Debug("container created", "id", id, "took", time.Since(t0).String())
	if b.k, err = b.startKernel(ctx); err != nil {
		return nil, err
	}
	e.learnSeccomp(ctx, b)
	return b, nil
}

// learnSeccomp keeps the seccomp program crun compiled for a container
// created without a cached one (see seccompCache).
func (e *engine) learnSeccomp(ctx context.Context, b *box) {
	if e.seccomp == nil || !e.seccomp.empty() {
		return
	}
	spec, err := b.ctr.Spec(ctx)
	if err != nil {
		return
	}
	state := filepath.Join(e.runcRoot, e.rt.name, e.s.Namespace, b.id)
	if err := e.seccomp.learn(spec, state); err != nil {
		e.log.Warn("seccomp program not cached; crun compiles it for every container", "error", err)
	}
}

// startKernel starts a new task in the container; its stdin and stdout
// FIFOs carry the kernel's framed channel.
func (b *box) startKernel(ctx context.Context) (*kernelTask, error) {
	ctx = b.e.scoped(ctx)
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	k := &kernelTask{stdin: stdinW, done: make(chan struct{}), stderr: &sdk.TailWriter{Max: 4096}}
	t0 := time.Now()
	task, err := b.ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(stdinR, stdoutW, k.stderr), cio.WithFIFODir(b.e.fifos)))
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("create kernel task: %w", err)
	}
	k.task = task
	exited, err := task.Wait(b.e.ctx)
	if err != nil {
		b.deleteTask(ctx, k)
		return nil, fmt.Errorf("wait for kernel task: %w", err)
	}
	go func() {
		st := <-exited
		k.code = st.ExitCode()
		k.oom = k.code == 128+uint32(syscall.SIGKILL) && b.cg.oomKills() > 0
		// Let the output copy drain before the channel reports EOF, so a
		// last frame is not lost; a shim that never closes is not waited for.
		drained := make(chan struct{})
		go func() { task.IO().Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(2 * time.Second):
		}
		stdoutW.Close()
		close(k.done)
	}()
	t1 := time.Now()
	if err := task.Start(ctx); err != nil {
		b.deleteTask(ctx, k)
		return nil, fmt.Errorf("start kernel in container %s: %w%s", b.id, err, k.stderr.Suffix("kernel stderr"))
	}
	k.pid = int(task.Pid())
	k.conn = kernel.NewConn(stdoutR, stdinW)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ready, err := k.conn.WaitReady(wctx)
	if err != nil {
		k.kill()
		b.deleteTask(ctx, k)
		return nil, fmt.Errorf("kernel in container %s failed to start (%s): %w%s", b.id, k.status(), err, k.stderr.Suffix("kernel stderr"))
	}
	k.kernelPid = ready.Pid
	// Where a cold start goes (the pool hides it from sessions).
	b.e.log.Debug("kernel task started", "container", b.id, "task_create", t1.Sub(t0).String(), "start_to_ready", time.Since(t1).String())
	return k, nil
}

// deleteTask kills the task if needed and removes it from containerd.
func (b *box) deleteTask(ctx context.Context, k *kernelTask) {
	if k == nil || k.task == nil {
		return
	}
	ctx = b.e.scoped(context.WithoutCancel(ctx))
	if k.pid > 0 {
		k.kill()
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			_ = k.task.Kill(ctx, syscall.SIGKILL)
			<-k.done
		}
	} else {
		_ = k.task.Kill(ctx, syscall.SIGKILL)
	}
	if _, err := k.task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		b.e.log.Warn("delete kernel task", "container", b.id, "error", err)
	}
	k.stdin.Close()
}

// restartKernel replaces a dead or stuck kernel with a fresh one.
func (b *box) restartKernel(ctx context.Context) error {
	b.deleteTask(ctx, b.k)
	k, err := b.startKernel(ctx)
	if err != nil {
		b.k = nil
		return err
	}
	b.k = k
	return nil
}

// destroy removes the container, its task and its slot.
func (b *box) destroy(ctx context.Context) {
	ctx = b.e.scoped(context.WithoutCancel(ctx))
	b.deleteTask(ctx, b.k)
	if b.ctr != nil {
		if err := b.ctr.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			b.e.log.Warn("delete container", "container", b.id, "error", err)
		}
	}
	if err := removeSlot(b.slot.root); err != nil {
		b.e.log.Warn("remove container slot", "container", b.id, "error", err)
	}
}
