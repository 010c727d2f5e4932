package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// The kernel's channel. Each container has three FIFOs in its slot
// (channel/in, out, err), shown read-only at guestChannelDir. The
// container's init opens them read-write and makes them the kernel's
// stdin, stdout and stderr (see initproc.ChannelEnv), so the kernel holds
// both ends of each: it never reads end-of-file or gets EPIPE when the
// plugin process goes away, and what either side wrote stays in the FIFO.
// The plugin opens them read-write too (an open that never blocks, before
// or after the kernel's). A new plugin process opens the same FIFOs and
// talks to the same kernel: that is how a session survives a plugin
// SIGKILL. Since no side ever sees end-of-file, the plugin learns that a
// kernel ended from its task's exit (containerd), and then closes its ends.

// channelNames are the FIFOs, in the order of the kernel's fds 0, 1, 2.
var channelNames = [3]string{"in", "out", "err"}

// makeChannel creates a container's channel FIFOs in dir.
func makeChannel(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	for _, name := range channelNames {
		p := filepath.Join(dir, name)
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return fmt.Errorf("channel: mkfifo %s: %w", p, err)
		}
		if err := os.Chown(p, image.SandboxUID, image.SandboxUID); err != nil {
			return fmt.Errorf("channel: %w", err)
		}
	}
	if err := os.Chown(dir, image.SandboxUID, image.SandboxUID); err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	return nil
}

// kernelTask is one run of the kernel in a container: the container's init
// task, whose child the kernel is. It implements kernel.Process.
type kernelTask struct {
	b    *box
	task client.Task
	// pid is the host pid of the task (the container's init).
	pid int
	// kernelPid is the kernel's pid inside the container.
	kernelPid int
	in, out   *os.File
	errf      *os.File
	conn      *kernel.Conn
	tail      *sdk.TailWriter
	// oomBase is the cgroup's OOM kill count when the kernel started.
	oomBase int

	done      chan struct{}
	exit      kernel.Exit // valid once done is closed
	closeOnce sync.Once
	killOnce  sync.Once
	errDone   chan struct{} // the stderr reader returned
}

// openKernel opens the plugin's ends of the box's channel.
func (b *box) openKernel() (*kernelTask, error) {
	k := &kernelTask{b: b, done: make(chan struct{}), errDone: make(chan struct{}), tail: &sdk.TailWriter{Max: 4096}}
	var files [3]*os.File
	for i, name := range channelNames {
		// Read-write: never blocks, whether the kernel has opened its end
		// or not. os.File polls a FIFO, so closing it ends a pending read
		// or write.
		f, err := os.OpenFile(filepath.Join(b.slot.channel(), name), os.O_RDWR, 0)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return nil, fmt.Errorf("open kernel channel: %w", err)
		}
		files[i] = f
	}
	k.in, k.out, k.errf = files[0], files[1], files[2]
	go func() {
		defer close(k.errDone)
		sc := bufio.NewScanner(k.errf)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(k.tail, sc.Text())
			b.e.log.Debug("kernel stderr", "container", b.id, "line", sc.Text())
		}
		// A line over 1 MiB stops the scanner; keep the FIFO flowing.
		_, _ = io.Copy(io.Discard, k.errf)
	}()
	return k, nil
}

// startKernel starts a new kernel task in the container and waits until
// the kernel is ready.
func (b *box) startKernel(ctx context.Context) (*kernelTask, error) {
	ctx = b.e.scoped(ctx)
	k, err := b.openKernel()
	if err != nil {
		return nil, err
	}
	k.oomBase = b.cg.oomKills()
	t0 := time.Now()
	// No IO of containerd's: the channel is the FIFOs init opens.
	task, err := b.ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		k.closeFiles()
		return nil, fmt.Errorf("create kernel task: %w", err)
	}
	k.task = task
	if err := k.watch(); err != nil {
		// Not followed, so not killed through Kill (which waits for the exit).
		if _, derr := task.Delete(ctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			b.e.log.Warn("delete kernel task", "container", b.id, "error", derr)
		}
		k.closeFiles()
		return nil, err
	}
	t1 := time.Now()
	if err := task.Start(ctx); err != nil {
		k.Kill(ctx)
		return nil, fmt.Errorf("start kernel in container %s: %w%s", b.id, err, k.tail.Suffix("kernel stderr"))
	}
	k.pid = int(task.Pid())
	k.conn = kernel.NewConn(k.out, k.in)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ready, err := k.conn.WaitReady(wctx)
	if err != nil {
		k.Kill(ctx)
		return nil, fmt.Errorf("kernel in container %s failed to start (%s): %w%s", b.id, k.Exit().Reason, err, k.tail.Suffix("kernel stderr"))
	}
	k.kernelPid = ready.Pid
	// Where a cold start goes (the pool hides it from sessions).
	b.e.log.Debug("kernel task started", "container", b.id, "task_create", t1.Sub(t0).String(), "start_to_ready", time.Since(t1).String())
	return k, nil
}

// watch follows the task's exit: once it has exited (and what it wrote
// has been read), the plugin's ends of the channel are closed, which ends
// the Conn, and Done is closed.
func (k *kernelTask) watch() error {
	exited, err := k.task.Wait(k.b.e.ctx)
	if err != nil {
		return fmt.Errorf("wait for kernel task: %w", err)
	}
	go func() {
		st := <-exited
		// Let the reader take the last frames and lines: nobody writes any
		// more, so what is in the FIFOs is all there is.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && (unread(k.out) > 0 || unread(k.errf) > 0) {
			time.Sleep(2 * time.Millisecond)
		}
		k.closeFiles()
		select {
		case <-k.errDone:
		case <-time.After(time.Second):
		}
		k.exit = k.exitOf(st)
		close(k.done)
	}()
	return nil
}

// unread is how many bytes wait in a FIFO (0 when it cannot tell).
func unread(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	// Control, not Fd: Fd would put the file in blocking mode. TIOCINQ
	// is FIONREAD.
	if err := rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return 0
	}
	return n
}

func (k *kernelTask) exitOf(st client.ExitStatus) kernel.Exit {
	tail := k.tail.String()
	if err := st.Error(); err != nil {
		return kernel.Exit{Code: 1, Reason: fmt.Sprintf("the kernel task could not be followed: %v", err), Tail: tail}
	}
	code := int(st.ExitCode())
	if code == 128+int(syscall.SIGKILL) && k.b.cg.oomKills() > k.oomBase {
		ex := kernel.SignalExit(syscall.SIGKILL, tail)
		ex.Reason = "killed by the out-of-memory killer: the session's memory limit was reached"
		return ex
	}
	return kernel.CodeExit(code, tail)
}

func (k *kernelTask) closeFiles() {
	k.closeOnce.Do(func() {
		for _, f := range []*os.File{k.in, k.out, k.errf} {
			if f != nil {
				f.Close()
			}
		}
	})
}

func (k *kernelTask) alive() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// Conn implements kernel.Process.
func (k *kernelTask) Conn() *kernel.Conn { return k.conn }

// Interrupt implements kernel.Process: SIGINT to the container's init,
// which forwards it to the kernel (KeyboardInterrupt in the cell). The
// plugin runs in the host's pid namespace, so signalling the task's host
// pid directly avoids a round trip through the shim and the runtime.
func (k *kernelTask) Interrupt() error {
	if err := syscall.Kill(k.pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("interrupt kernel: %w", err)
	}
	return nil
}

// Done implements kernel.Process.
func (k *kernelTask) Done() <-chan struct{} { return k.done }

// Exit implements kernel.Process.
func (k *kernelTask) Exit() kernel.Exit {
	select {
	case <-k.done:
		return k.exit
	default:
		return kernel.Exit{Reason: "still running"}
	}
}

// Kill implements kernel.Process: the task is killed (with every process
// of the container) and deleted.
func (k *kernelTask) Kill(ctx context.Context) {
	k.killOnce.Do(func() {
		ctx := k.b.e.scoped(context.WithoutCancel(ctx))
		if k.alive() {
			if k.pid > 0 {
				// Only "no such process", which the exit then says.
				_ = syscall.Kill(k.pid, syscall.SIGKILL)
			} else if err := k.task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				k.b.e.log.Debug("kill kernel task", "container", k.b.id, "error", err)
			}
			select {
			case <-k.done:
			case <-time.After(5 * time.Second):
				if err := k.task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
					k.b.e.log.Warn("kill kernel task", "container", k.b.id, "error", err)
				}
			}
		}
		if _, err := k.task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			k.b.e.log.Warn("delete kernel task", "container", k.b.id, "error", err)
		}
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			// The exit was never reported (containerd gone): let go of the
			// channel anyway; Done stays open.
			k.b.e.log.Warn("kernel task exit not reported", "container", k.b.id)
			k.closeFiles()
		}
	})
}

// attachKernel takes over the kernel task a previous plugin process left
// running in the container: it opens the same channel FIFOs, follows the
// task, and brings the kernel to rest (settle) before anyone uses it.
func (b *box) attachKernel(ctx context.Context) (*kernelTask, error) {
	ctx = b.e.scoped(ctx)
	task, err := b.ctr.Task(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("kernel task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("kernel task status: %w", err)
	}
	if st.Status != client.Running {
		return nil, fmt.Errorf("the kernel task is %s", st.Status)
	}
	k, err := b.openKernel()
	if err != nil {
		return nil, err
	}
	k.task, k.pid = task, int(task.Pid())
	// Count OOM kills from now: earlier ones were not this kernel's.
	k.oomBase = b.cg.oomKills()
	if err := k.watch(); err != nil {
		k.closeFiles()
		return nil, err
	}
	if err := settle(ctx, k); err != nil {
		k.Kill(ctx)
		return nil, fmt.Errorf("%w%s", err, k.tail.Suffix("kernel stderr"))
	}
	if k.kernelPid = kernelChild(b.cg, k.pid); k.kernelPid == 0 {
		k.Kill(ctx)
		return nil, errors.New("the kernel process was not found in the container")
	}
	k.conn = kernel.NewConn(k.out, k.in)
	return k, nil
}

// settle brings an adopted kernel to rest before its channel is handed to
// a Conn. The previous plugin process may have died while the kernel ran a
// cell, waited in a host call, or with frames in the FIFOs for nobody.
//
// The probe is an empty configure frame: only the kernel's main loop
// answers it ("configured"), while a kernel waiting in a host call drops
// everything but pings and the call's result. So an answer means the
// kernel is at rest and everything it wrote before is read (and dropped:
// it was the old execution's). A host call the kernel announces is
// answered with an error; a kernel that does not answer within a second
// is running code or waits in a host call announced to the dead process,
// and is interrupted, once. After a cell ends, the probe is sent again (a
// host call may have dropped the first). A kernel not at rest three
// seconds after the interrupt is given up.
func settle(ctx context.Context, k *kernelTask) error {
	probe := func() error {
		if err := kernel.WriteFrame(k.in, &kernel.Frame{Type: "configure"}); err != nil {
			return fmt.Errorf("probe kernel: %w", err)
		}
		return nil
	}
	if err := probe(); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	interrupted := false
	defer k.out.SetReadDeadline(time.Time{})
	for {
		if err := k.out.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("settle kernel: %w", err)
		}
		m, err := kernel.ReadFrame(k.out)
		if errors.Is(err, os.ErrDeadlineExceeded) && !interrupted {
			interrupted = true
			if err := k.Interrupt(); err != nil {
				return err
			}
			deadline = time.Now().Add(3 * time.Second)
			continue
		}
		if err != nil {
			return fmt.Errorf("the kernel did not come to rest: %w", err)
		}
		switch m.Type {
		case "host_call":
			reply := &kernel.Frame{Type: "host_result", Call: m.Call,
				Error: "the plugin process serving this session restarted during the call"}
			if err := kernel.WriteFrame(k.in, reply); err != nil {
				return fmt.Errorf("settle kernel: %w", err)
			}
		case "result":
			if err := probe(); err != nil {
				return err
			}
		case "configured":
			return nil
		}
	}
}

// kernelChild finds the kernel's pid inside the container: init's child
// that started first (orphans init adopted were started by the kernel,
// later). 0 when there is none.
func kernelChild(cg cgroup, initPid int) int {
	pids, err := cg.procs()
	if err != nil {
		return 0
	}
	best, bestStart := 0, uint64(0)
	for _, pid := range pids {
		ppid, start, ok := procParent(pid)
		if !ok || ppid != initPid {
			continue
		}
		if best == 0 || start < bestStart {
			best, bestStart = pid, start
		}
	}
	if best == 0 {
		return 0
	}
	inner, _ := nsPid(best)
	return inner
}
