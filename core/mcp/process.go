package mcp

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// How long a stopping server gets after stdin EOF, then after SIGTERM.
const (
	stopGrace = 2 * time.Second
	termGrace = 2 * time.Second
)

// process is a stdio server's process. Its pipes are plain os.Pipes, so
// that its exit is known the moment it happens (done) whatever its
// children hold open, and the transport reads stdout to its end.
type process struct {
	cmd    *exec.Cmd
	stdin  *os.File // write end
	stdout *os.File // read end
	done   chan struct{}
	err    error // how it exited, once done is closed
}

// startProcess runs path in a process group of its own with exactly env,
// copying its stderr to stderr.
func startProcess(path string, args, env []string, stderr io.Writer) (*process, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	// The child has its ends; ours would keep its stdin open and hide the
	// EOF of its stdout and stderr.
	inR.Close()
	outW.Close()
	errW.Close()
	go func() {
		_, _ = io.Copy(stderr, errR)
		errR.Close()
	}()
	p := &process{cmd: cmd, stdin: inW, stdout: outR, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// What the server started goes with it.
		killProcessGroup(cmd.Process.Pid)
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: stdin EOF (servers exit on it), then SIGTERM,
// then SIGKILL, each to the whole process group; then it closes stdout so
// that a reader blocked on it (held open by a stray child) returns.
func (p *process) stop() {
	_ = p.stdin.Close()
	if !p.waitFor(stopGrace) {
		terminateProcessGroup(p.cmd)
		if !p.waitFor(termGrace) {
			killProcessGroup(p.cmd.Process.Pid)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = p.stdout.Close()
}

func (p *process) waitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}
