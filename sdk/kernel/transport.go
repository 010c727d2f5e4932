package kernel

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Transport is what a backend supplies to a Session: a way to start the
// kernel in its sandbox. Everything else (timeouts, interrupt-then-kill,
// kernel death, restart, state_lost) is the Session's.
type Transport interface {
	// Start starts a fresh kernel and returns it once it has announced
	// itself ready (Conn.WaitReady). The Session then applies its Setup.
	// A pooled transport may return a kernel started ahead of demand.
	Start(ctx context.Context) (Process, error)
}

// Process is one running kernel: a child process, a task in a container, a
// kernel generation in a VM.
type Process interface {
	// Conn is the kernel's framed channel.
	Conn() *Conn
	// Interrupt asks the kernel to stop the running code (KeyboardInterrupt
	// in the cell). ErrNoInterrupt: the transport cannot; a timeout then
	// kills the kernel at once.
	Interrupt() error
	// Kill stops the kernel by force and frees what it held (a task, a
	// VM), returning once it is gone. It is called for every process the
	// Session lets go of, dead or alive, and may be called twice.
	Kill(ctx context.Context)
	// Done is closed once the kernel has exited.
	Done() <-chan struct{}
	// Exit says how the kernel ended; valid once Done is closed.
	Exit() Exit
}

// ErrNoInterrupt is returned by Process.Interrupt when the transport has no
// way to interrupt running code (WASI has no signals).
var ErrNoInterrupt = errors.New("the kernel cannot be interrupted")

// Exit is how a kernel process ended.
type Exit struct {
	// Code is the exit status (0 when killed by a signal).
	Code int
	// Signal is the signal that killed the kernel (0 when it exited).
	Signal int
	// Reason says it for a person: "exit status 3", "killed by signal
	// killed", "killed by the out-of-memory killer ...".
	Reason string
	// Tail is the end of what the kernel wrote outside its channel
	// (Python's own fatal errors).
	Tail string
	// SandboxLost: the sandbox itself is gone (the VM stopped, the
	// container was removed), not only the kernel in it.
	SandboxLost bool
}

// ExitCode is the status a result reports: the exit code, or 128+signal as
// shells do.
func (e Exit) ExitCode() int {
	if e.Signal > 0 {
		return 128 + e.Signal
	}
	if e.Code > 0 {
		return e.Code
	}
	return 1
}

// SignalExit builds the Exit of a process killed by sig.
func SignalExit(sig syscall.Signal, tail string) Exit {
	return Exit{Signal: int(sig), Reason: fmt.Sprintf("killed by signal %s", sig), Tail: tail}
}

// CodeExit builds the Exit of a process that exited with code. Statuses
// above 128 are how container runtimes report a signal; they are decoded.
func CodeExit(code int, tail string) Exit {
	if code > 128 && code < 128+65 {
		return SignalExit(syscall.Signal(code-128), tail)
	}
	return Exit{Code: code, Reason: fmt.Sprintf("exit status %d", code), Tail: tail}
}
