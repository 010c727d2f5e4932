package backend

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/worker"
)

// launcher starts worker processes: the plugin binary re-executed in worker
// mode, each hosting one CPython-for-WASI instance running the kernel.
type launcher struct {
	exe    string
	cfg    worker.Config
	logger hclog.Logger
	// warmImports are imported by pooled kernels before they are handed out.
	warmImports []string
	// lateBinding: the engine's workers run their kernel before they are
	// bound to a session (wazero); else the kernel starts at the binding.
	lateBinding bool
	// staged: workers get a mount namespace of their own and their
	// cfg.StageDir, so a pooled worker of an engine without late binding
	// resumes its kernel before the binding (see worker.stage). Cleared
	// for good when the system refuses the namespace.
	staged atomic.Bool
}

// proc is one running worker: a kernel child process (kernel.Child, which
// supervises it) plus the control socket that binds its guest directories.
type proc struct {
	*kernel.Child
	cmd     *exec.Cmd
	ctrl    *os.File
	ctrlR   *bufio.Reader
	full    *os.File // read end of the worker's FullFD pipe
	memory  int64
	started time.Time
	// staged: the worker has a staging root; its binding carries the
	// session's directories as mount trees (mountTrees).
	staged bool
}

// start launches a worker with the given memory cap and waits until the
// kernel inside it is ready.
func (l *launcher) start(ctx context.Context, memory int64) (*proc, error) {
	cfg := l.cfg
	cfg.MemoryBytes = memory
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control-worker")
	defer theirs.Close()
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		ours.Close()
		return nil, fmt.Errorf("storage-full pipe: %w", err)
	}
	fullR, fullW := os.NewFile(uintptr(pipe[0]), "full"), os.NewFile(uintptr(pipe[1]), "full-worker")
	defer fullW.Close()

	newCmd := func(cfg worker.Config, unshare uintptr) (*exec.Cmd, error) {
		js, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("encode worker config: %w", err)
		}
		cmd := exec.Command(l.exe)
		// Only what the worker needs: the guest gets its own environment.
		cmd.Env = []string{worker.EnvVar + "=" + string(js)}
		cmd.ExtraFiles = []*os.File{theirs, fullW} // fds 3 and 4
		// CLONE_NEWNS: Go's exec also makes the new namespace's mounts
		// private, so the worker's mounts never reach the host's table.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Unshareflags: unshare}
		return cmd, nil
	}
	opts := kernel.ChildOptions{
		Logger: l.logger.Named("worker"), StartTimeout: 2 * time.Minute,
		AfterExit: func() { ours.Close(); fullR.Close() },
	}
	var (
		cmd   *exec.Cmd
		child *kernel.Child
	)
	if l.staged.Load() {
		if cmd, err = newCmd(cfg, syscall.CLONE_NEWNS); err == nil {
			child, err = kernel.StartChild(ctx, cmd, opts)
			if err != nil && errors.Is(err, syscall.EPERM) {
				l.staged.Store(false)
				l.logger.Info("workers cannot have a mount namespace of their own: pooled workers start their instance at the binding", "error", err)
			}
		}
	}
	if !l.staged.Load() {
		cfg.StageDir = ""
		if cmd, err = newCmd(cfg, 0); err == nil {
			child, err = kernel.StartChild(ctx, cmd, opts)
		}
	}
	if err != nil {
		ours.Close()
		fullR.Close()
		return nil, fmt.Errorf("wasm worker: %w", err)
	}
	return &proc{Child: child, cmd: cmd, ctrl: ours, ctrlR: bufio.NewReader(ours), full: fullR, memory: memory, started: time.Now(), staged: cfg.StageDir != ""}, nil
}

// Interrupt implements kernel.Process: WASI has no signals, and a check
// inside compiled code would slow all Python down, so code that overruns
// its time costs the worker.
func (p *proc) Interrupt() error { return kernel.ErrNoInterrupt }

// warm imports the common stdlib modules so the first exec of a session
// does not pay for them. Names are not bound in the session's globals.
func (l *launcher) warm(ctx context.Context, p *proc) error {
	// A worker whose kernel starts at its binding resumes a pre-initialized
	// image, which has the warm imports already.
	if len(l.warmImports) == 0 || !l.lateBinding {
		return nil
	}
	if err := p.Conn().Configure(ctx, kernel.Setup{Preload: l.warmImports}); err != nil {
		return fmt.Errorf("warm imports: %w%s", err, p.Tail().Suffix("kernel stderr"))
	}
	return nil
}

// bind points the guest's /workspace and /mcpruntime/lib at host
// directories. The kernel then picks them up from its session's Setup
// (working directory, forgotten import caches).
func (p *proc) bind(ctx context.Context, workspace, lib string, mounts []sdk.LibMount) error {
	msg, err := json.Marshal(worker.Binding{Workspace: workspace, Lib: lib, Mounts: mounts})
	if err != nil {
		return fmt.Errorf("bind worker: %w", err)
	}
	if err := p.sendBinding(append(msg, '\n'), workspace, mounts); err != nil {
		return fmt.Errorf("bind worker: %w", err)
	}
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := p.ctrlR.ReadString('\n')
		ch <- answer{line, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			return fmt.Errorf("bind worker: %w%s", a.err, p.Tail().Suffix("kernel stderr"))
		}
		if strings.TrimSpace(a.line) != "ok" {
			return fmt.Errorf("bind worker: %s", strings.TrimSpace(a.line))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bind worker: %w", ctx.Err())
	}
}

// sendBinding writes the binding's line, with the session's directories as
// mount trees when the worker stages.
func (p *proc) sendBinding(line []byte, workspace string, mounts []sdk.LibMount) error {
	if !p.staged {
		_, err := p.ctrl.Write(line)
		return err
	}
	fds, err := mountTrees(workspace, mounts)
	if err != nil {
		return err
	}
	defer closeFDs(fds)
	rc, err := p.ctrl.SyscallConn()
	if err != nil {
		return err
	}
	var (
		n    int
		serr error
	)
	if err := rc.Write(func(fd uintptr) bool {
		n, serr = unix.SendmsgN(int(fd), line, unix.UnixRights(fds...), nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	// A stream socket may take part of the line; the rest needs no fds.
	_, err = p.ctrl.Write(line[n:])
	return err
}

// storageFull reports whether the guest's workspace found the host's file
// system full since the last call (the worker's FullFD pipe has bytes).
func (p *proc) storageFull() bool {
	rc, err := p.full.SyscallConn()
	if err != nil {
		return false // closed: the worker is gone
	}
	full := false
	// Drain without waiting: the callback never asks the poller to wait.
	_ = rc.Read(func(fd uintptr) bool {
		var buf [64]byte
		for {
			n, err := syscall.Read(int(fd), buf[:])
			if n <= 0 || err != nil {
				return true
			}
			full = true
		}
	})
	return full
}

func (p *proc) alive() bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// kill stops the worker and waits for it to be reaped.
func (p *proc) kill() { p.Kill(context.Background()) }

// stop asks the kernel to exit, then kills the worker if it lingers.
func (p *proc) stop() {
	if err := p.Conn().Shutdown(); err == nil {
		select {
		case <-p.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
	p.kill()
}

var errPoolClosed = errors.New("wasm backend is closing")
