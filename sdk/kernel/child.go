package kernel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Child is a kernel running as a child process of the plugin, its channel
// on the child's stdin and stdout. It implements Process; a backend whose
// kernel lives in a process of its own (hostpython, the wasm worker) embeds
// it and adds what its sandbox needs.
type Child struct {
	cmd  *exec.Cmd
	conn *Conn
	done chan struct{}
	exit Exit // valid after done
	tail *sdk.TailWriter
}

// ChildOptions configure StartChild.
type ChildOptions struct {
	// Logger receives the child's stderr, a line at a time, at debug level.
	Logger hclog.Logger
	// StartTimeout bounds start-up until the kernel is ready (default 30s).
	StartTimeout time.Duration
	// AfterExit runs once the child has been reaped, before Done closes
	// (the wasm worker closes its control socket there).
	AfterExit func()
}

// StartChild starts cmd, whose Stdin, Stdout and Stderr must be unset, and
// waits until the kernel in it is ready. On failure the child is killed
// and the error carries the end of its stderr.
func StartChild(ctx context.Context, cmd *exec.Cmd, opts ChildOptions) (*Child, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
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
	c := &Child{cmd: cmd, done: make(chan struct{}), tail: &sdk.TailWriter{Max: 4096}}
	logDone := make(chan struct{})
	pid := cmd.Process.Pid
	go func() {
		defer close(logDone)
		drainStderr(stderr, c.tail, func(line string) { opts.Logger.Debug("kernel stderr", "pid", pid, "line", line) })
	}()
	go func() {
		<-logDone
		err := cmd.Wait()
		c.exit = processExit(cmd.ProcessState, err, c.tail.String())
		if opts.AfterExit != nil {
			opts.AfterExit()
		}
		close(c.done)
	}()
	c.conn = NewConn(stdout, stdin)
	sctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if _, err := c.conn.WaitReady(sctx); err != nil {
		c.Kill(ctx)
		return nil, fmt.Errorf("kernel failed to start (%s): %w%s", c.exit.Reason, err, c.tail.Suffix("kernel stderr"))
	}
	return c, nil
}

// Conn implements Process.
func (c *Child) Conn() *Conn { return c.conn }

// Interrupt implements Process: SIGINT, which the kernel turns into
// KeyboardInterrupt in the running cell.
func (c *Child) Interrupt() error {
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("interrupt kernel: %w", err)
	}
	return nil
}

// Kill implements Process: SIGKILL, then wait until the child is reaped.
func (c *Child) Kill(context.Context) {
	select {
	case <-c.done:
		return
	default:
	}
	// The only error is "process already finished", which Done then says.
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Done implements Process.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exit implements Process.
func (c *Child) Exit() Exit { return c.exit }

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Tail is the end of the child's stderr so far.
func (c *Child) Tail() *sdk.TailWriter { return c.tail }

// drainStderr reads a kernel process's stderr to its end, keeping the tail
// for error messages and handing each line to log.
func drainStderr(r io.Reader, tail *sdk.TailWriter, log func(line string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(tail, sc.Text())
		log(sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB stops the scanner; keep the pipe flowing
}

// processExit describes how a reaped child ended; err is the Wait error,
// used when there is no process state.
func processExit(ps *os.ProcessState, err error, tail string) Exit {
	if ps == nil {
		reason := "not started"
		if err != nil {
			reason = err.Error()
		}
		return Exit{Code: 1, Reason: reason, Tail: tail}
	}
	if st, ok := ps.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		return SignalExit(st.Signal(), tail)
	}
	return Exit{Code: ps.ExitCode(), Reason: fmt.Sprintf("exit status %d", ps.ExitCode()), Tail: tail}
}
