// Package initproc is the sandbox container's init process (PID 1): it
// starts the kernel, forwards signals to it, reaps every orphan (code that
// double-forks or leaves background children would otherwise fill the pids
// limit with zombies) and exits with the kernel's status.
//
// It runs inside the container from a copy of mcpruntime-opensandbox-init
// (cmd/), or of the plugin binary when that is missing, which is why both
// are built statically (CGO_ENABLED=0).
package initproc

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Run starts argv as the kernel and supervises it; it returns the exit
// status the container should report.
func Run(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "init: no command")
		return 127
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	files := []uintptr{0, 1, 2}
	if dir := os.Getenv(ChannelEnv); dir != "" {
		os.Unsetenv(ChannelEnv)
		fds, err := openChannel(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "init: %v\n", err)
			return ChannelFailed
		}
		files = fds
	}
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "init: start %s: %v\n", argv[0], err)
		return 127
	}
	for _, fd := range files {
		if fd > 2 {
			_ = syscall.Close(int(fd)) // the kernel holds its copies
		}
	}
	// The kernel's streams are its own now; init keeps none open (with
	// the channel, the plugin follows the task's exit, not end-of-file).
	null, _ := os.Open(os.DevNull)
	for fd := 0; fd <= 2; fd++ {
		if null != nil {
			_ = syscall.Dup2(int(null.Fd()), fd)
		}
	}
	for s := range sigs {
		if s != syscall.SIGCHLD {
			_ = syscall.Kill(pid, s.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 1
}

// ChannelEnv names the directory of the kernel's channel FIFOs (in, out,
// err). Init opens each read-write and hands them to the kernel as its
// stdin, stdout and stderr. Read-write, because a FIFO reports end of
// file to its reader once no writer holds it, and fails its writer once
// no reader does: with the kernel holding both ends of each, the channel
// survives the plugin process that was on the other side (a crashed or
// SIGKILLed plugin), keeping what was written, and the next plugin
// process opens the same FIFOs and carries on. The plugin learns that the
// kernel died from the task's exit, not from the channel.
const ChannelEnv = "MCPRUNTIME_INIT_CHANNEL"

// ChannelFailed is init's exit status when it could not open the channel.
const ChannelFailed = 126

// openChannel opens the channel FIFOs as the kernel's fds 0, 1 and 2. Its
// own stderr goes to the err FIFO too, so that its messages reach the
// plugin.
func openChannel(dir string) ([]uintptr, error) {
	var fds []uintptr
	for _, name := range []string{"in", "out", "err"} {
		fd, err := syscall.Open(dir+"/"+name, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range fds {
				_ = syscall.Close(int(f))
			}
			return nil, fmt.Errorf("open channel %s/%s: %w", dir, name, err)
		}
		fds = append(fds, uintptr(fd))
	}
	// Failing to redirect only loses init's own messages.
	_ = syscall.Dup2(int(fds[2]), 2)
	return fds, nil
}

// Pause waits for SIGTERM, SIGINT or SIGHUP and returns 0: the process of
// a container that exists only to keep the plugin's runtime shim running
// (see the sandbox package's anchor).
func Pause() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	<-sigs
	return 0
}
