package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// LocalOptions configure a kernel that runs as a child process.
type LocalOptions struct {
	// Command builds the command that starts kernel.py. It is called again
	// for every restart. Its Stdin, Stdout and Stderr must be unset.
	Command func() (*exec.Cmd, error)
	// Logger receives the kernel's stderr (Python's own fatal errors).
	Logger hclog.Logger
	// StartTimeout bounds start-up (default 30s).
	StartTimeout time.Duration
	// Grace is how long an interrupted execution may take to stop.
	Grace time.Duration
}

// Local is a kernel in a child process that is restarted when it dies.
// Interrupts are SIGINT; a kernel that ignores them is killed.
type Local struct {
	opts LocalOptions

	mu   sync.Mutex
	proc *localProc
}

type localProc struct {
	cmd    *exec.Cmd
	conn   *Conn
	done   chan struct{}
	status string // exit description, valid after done
	tail   *sdk.TailWriter
}

// StartLocal starts the kernel and waits until it is ready.
func StartLocal(ctx context.Context, opts LocalOptions) (*Local, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	l := &Local{opts: opts}
	p, err := l.start(ctx)
	if err != nil {
		return nil, err
	}
	l.proc = p
	return l, nil
}

func (l *Local) start(ctx context.Context) (*localProc, error) {
	cmd, err := l.opts.Command()
	if err != nil {
		return nil, fmt.Errorf("kernel command: %w", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("kernel stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("kernel stdout: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("kernel stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kernel %s: %w", cmd.Path, err)
	}
	p := &localProc{cmd: cmd, done: make(chan struct{}), tail: &sdk.TailWriter{Max: 4096}}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		DrainStderr(stderr, p.tail, func(line string) { l.opts.Logger.Debug("kernel stderr", "line", line) })
	}()
	go func() {
		<-logDone
		err := cmd.Wait()
		p.status = ExitDescription(cmd.ProcessState, err)
		close(p.done)
	}()
	p.conn = NewConn(stdout, stdin)
	sctx, cancel := context.WithTimeout(ctx, l.opts.StartTimeout)
	defer cancel()
	if _, err := p.conn.WaitReady(sctx); err != nil {
		p.kill()
		<-p.done
		return nil, fmt.Errorf("kernel failed to start (%s): %w%s", p.status, err, p.tail.Suffix("kernel stderr"))
	}
	return p, nil
}

func (p *localProc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

func (p *localProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exec runs code. A kernel that died earlier is restarted first (the result
// then says the state was lost). Kernel deaths and unstoppable code are
// reported as results, not errors, and the kernel is replaced.
func (l *Local) Exec(ctx context.Context, code string, limits sdk.Limits, timeout time.Duration, host sdk.Host, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	restarted := false
	if l.proc == nil || !l.proc.alive() {
		p, err := l.start(ctx)
		if err != nil {
			return nil, err
		}
		l.proc, restarted = p, true
	}
	p := l.proc
	if timeout <= 0 {
		timeout = limits.Timeout
	}
	start := time.Now()
	res, err := p.conn.Exec(ctx, Request{
		Code:        code,
		Timeout:     timeout,
		OutputLimit: limits.OutputBytes,
		Grace:       l.opts.Grace,
		Interrupt:   func() error { return p.cmd.Process.Signal(syscall.SIGINT) },
	}, host, emit)
	switch {
	case err == nil:
		res.StateLost = res.StateLost || restarted
		return res, nil
	case errors.Is(err, ErrUnresponsive):
		p.kill()
		<-p.done
		l.proc = nil
		return &sdk.ExecResult{
			ExitCode: TimeoutExitCode, Error: sdk.ErrorTimeout, Duration: time.Since(start), StateLost: true,
			Message: fmt.Sprintf("execution timed out after %s and did not stop when interrupted; the kernel was killed and the session's variables are lost (workspace files are kept)", timeout),
		}, nil
	case errors.Is(err, ErrClosed):
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.kill()
			<-p.done
		}
		l.proc = nil
		return KernelDied(p.cmd.ProcessState, p.status+p.tail.Suffix("kernel stderr"), time.Since(start)), nil
	default:
		// ctx ended: the code was interrupted (or the kernel killed).
		if res == nil {
			p.kill()
			l.proc = nil
		}
		return nil, err
	}
}

// DrainStderr reads a kernel process's stderr to its end, keeping the tail
// for error messages and handing each line to log.
func DrainStderr(r io.Reader, tail *sdk.TailWriter, log func(line string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(tail, sc.Text())
		log(sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB stops the scanner; keep the pipe flowing
}

// KernelDied builds the result for a kernel that exited during an exec.
func KernelDied(ps interface{ ExitCode() int }, status string, d time.Duration) *sdk.ExecResult {
	code := 1
	if ps != nil {
		if c := ps.ExitCode(); c > 0 {
			code = c
		}
	}
	if ws, ok := ps.(interface{ Sys() any }); ok {
		if st, ok := ws.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			code = 128 + int(st.Signal())
		}
	}
	return &sdk.ExecResult{
		ExitCode: code, Error: sdk.ErrorKernelDied, Duration: d, StateLost: true,
		Message: fmt.Sprintf("the Python kernel died during execution (%s); the session's variables are lost, the next execution starts a fresh kernel", status),
	}
}

// Pid is the kernel process id (0 when not running).
func (l *Local) Pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil || l.proc.cmd.Process == nil {
		return 0
	}
	return l.proc.cmd.Process.Pid
}

// Close stops the kernel: a polite shutdown, then SIGKILL.
func (l *Local) Close(ctx context.Context) error {
	l.mu.Lock()
	p := l.proc
	l.proc = nil
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.conn.Shutdown()
	select {
	case <-p.done:
	case <-time.After(500 * time.Millisecond):
		p.kill()
		<-p.done
	case <-ctx.Done():
		p.kill()
		<-p.done
	}
	return nil
}

// ExitDescription says how a process ended ("exit status 3", "killed by
// signal segmentation fault"), for messages about dead kernels; err is the
// Wait error, used when there is no process state.
func ExitDescription(ps *os.ProcessState, err error) string {
	if ps == nil {
		if err != nil {
			return err.Error()
		}
		return "not started"
	}
	if st, ok := ps.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		return fmt.Sprintf("killed by signal %s", st.Signal())
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}
