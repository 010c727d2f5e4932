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
	env := os.Environ()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "init: start %s: %v\n", argv[0], err)
		return 127
	}
	// The kernel's streams are its own now; init keeps none open, so the
	// host sees EOF exactly when the kernel's side closes.
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

// Pause waits for SIGTERM, SIGINT or SIGHUP and returns 0: the process of
// a container that exists only to keep the plugin's runtime shim running
// (see the sandbox package's anchor).
func Pause() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	<-sigs
	return 0
}
