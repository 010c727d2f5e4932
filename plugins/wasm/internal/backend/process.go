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
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

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
}

// proc is one running worker.
type proc struct {
	cmd     *exec.Cmd
	conn    *kernel.Conn
	ctrl    *os.File
	ctrlR   *bufio.Reader
	done    chan struct{}
	status  string // exit description, valid after done
	tail    *sdk.TailWriter
	memory  int64
	started time.Time
}

// start launches a worker with the given memory cap and waits until the
// kernel inside it is ready.
func (l *launcher) start(ctx context.Context, memory int64) (*proc, error) {
	cfg := l.cfg
	cfg.MemoryBytes = memory
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode worker config: %w", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control-worker")
	defer theirs.Close()

	cmd := exec.Command(l.exe)
	// Only what the worker needs: the guest gets its own environment.
	cmd.Env = []string{worker.EnvVar + "=" + string(js)}
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("worker stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("worker stdout: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("worker stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("start wasm worker: %w", err)
	}
	p := &proc{cmd: cmd, ctrl: ours, ctrlR: bufio.NewReader(ours), done: make(chan struct{}),
		tail: &sdk.TailWriter{Max: 4096}, memory: memory, started: time.Now()}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		kernel.DrainStderr(stderr, p.tail, func(line string) { l.logger.Debug("worker stderr", "pid", cmd.Process.Pid, "line", line) })
	}()
	go func() {
		<-logDone
		err := cmd.Wait()
		p.status = kernel.ExitDescription(cmd.ProcessState, err)
		ours.Close()
		close(p.done)
	}()
	p.conn = kernel.NewConn(stdout, stdin)
	if _, err := p.conn.WaitReady(ctx); err != nil {
		p.kill()
		return nil, fmt.Errorf("wasm kernel failed to start (%s): %w%s", p.status, err, p.tail.Suffix("kernel stderr"))
	}
	return p, nil
}

// warm imports the common stdlib modules so the first exec of a session
// does not pay for them. Names are not bound in the session's globals.
func (l *launcher) warm(ctx context.Context, p *proc) error {
	if len(l.warmImports) == 0 {
		return nil
	}
	if err := p.conn.Configure(ctx, kernel.Setup{Preload: l.warmImports}); err != nil {
		return fmt.Errorf("warm imports: %w%s", err, p.tail.Suffix("kernel stderr"))
	}
	return nil
}

// bind points the guest's /workspace and /mcpruntime/lib at host
// directories, then has the kernel pick them (and env) up.
func (p *proc) bind(ctx context.Context, workspace, lib string, env map[string]string) error {
	msg, _ := json.Marshal(worker.Binding{Workspace: workspace, Lib: lib})
	if _, err := p.ctrl.Write(append(msg, '\n')); err != nil {
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
			return fmt.Errorf("bind worker: %w%s", a.err, p.tail.Suffix("kernel stderr"))
		}
		if strings.TrimSpace(a.line) != "ok" {
			return fmt.Errorf("bind worker: %s", strings.TrimSpace(a.line))
		}
	case <-ctx.Done():
		return fmt.Errorf("bind worker: %w", ctx.Err())
	}
	// The kernel chdir'd into the empty placeholder at start-up and the
	// import system cached directory listings: re-enter and forget them.
	setup := kernel.Setup{Env: env, Cwd: sdk.GuestWorkspace, ForgetImportCaches: true}
	if err := p.conn.Configure(ctx, setup); err != nil {
		return fmt.Errorf("bind worker: %w%s", err, p.tail.Suffix("kernel stderr"))
	}
	return nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill stops the worker and waits for it to be reaped.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop asks the kernel to exit, then kills the worker if it lingers.
func (p *proc) stop() {
	_ = p.conn.Shutdown()
	select {
	case <-p.done:
	case <-time.After(300 * time.Millisecond):
		p.kill()
	}
}

var errPoolClosed = errors.New("wasm backend is closing")
