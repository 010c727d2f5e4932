package vmm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// PidFile is written into a VM's directory so a later plugin process can
// find a VMM that outlived its plugin: to adopt it (Driver.Attach) or to
// kill it (Sweep).
const PidFile = "vmm.pid"

// ConsoleFile holds the VMM's output (the guest's serial console and the
// VMM's own errors). A file rather than a pipe to the plugin: the VMM
// outlives a plugin that crashes, and a plugin that adopts it reads the
// console from here.
const ConsoleFile = "console.log"

// proc supervises a VMM process: one this plugin started (a child), or one
// it adopted after a plugin restart (watched through a pidfd).
type proc struct {
	pid     int
	dir     string
	done    chan struct{}
	status  string // valid once done is closed
	signal  func(syscall.Signal) error
	once    sync.Once
	closeFn func()
}

// startProc starts cmd with its output going to dir's console file. The
// VMM gets a process group of its own and no parent-death signal, so it
// survives the plugin being killed (with its process group): a restarted
// plugin re-adopts it (RecoverSessions), and the run-dir sweep removes
// what nobody adopts.
func startProc(cmd *exec.Cmd, dir string) (*proc, error) {
	out, err := os.OpenFile(filepath.Join(dir, ConsoleFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console file: %w", err)
	}
	defer out.Close() // the child holds its own copy
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &proc{pid: cmd.Process.Pid, dir: dir, done: make(chan struct{})}
	p.signal = func(sig syscall.Signal) error { return cmd.Process.Signal(sig) }
	if err := os.WriteFile(filepath.Join(dir, PidFile), []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
		p.kill()
		return nil, fmt.Errorf("pid file: %w", err)
	}
	go func() {
		err := cmd.Wait()
		p.status = describeExit(cmd, err)
		close(p.done)
	}()
	return p, nil
}

// adoptProc watches the VMM recorded in dir, started by an earlier plugin
// process. marker must appear on its command line (the pid may have been
// reused by an unrelated process since).
func adoptProc(dir, marker string) (*proc, error) {
	b, err := os.ReadFile(filepath.Join(dir, PidFile))
	if err != nil {
		return nil, fmt.Errorf("adopt VMM: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil, fmt.Errorf("adopt VMM: malformed pid file %q", b)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt VMM %d: %w", pid, err)
	}
	// Checked after the pidfd is open: the pidfd pins this process, so the
	// command line read below is the one it signals.
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cl), marker) {
		unix.Close(fd)
		return nil, fmt.Errorf("adopt VMM %d: the process is gone or is not this VM's", pid)
	}
	p := &proc{pid: pid, dir: dir, done: make(chan struct{})}
	p.signal = func(sig syscall.Signal) error { return unix.PidfdSendSignal(fd, sig, nil, 0) }
	var closeOnce sync.Once
	p.closeFn = func() { closeOnce.Do(func() { unix.Close(fd) }) }
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		// Not our child: the exit status went to init. What it printed
		// is in the console file.
		p.status = "exited"
		close(p.done)
	}()
	return p, nil
}

func describeExit(cmd *exec.Cmd, err error) string {
	ps := cmd.ProcessState
	if ps == nil {
		return fmt.Sprint(err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// kill stops the VMM at once and waits until it is gone.
func (p *proc) kill() {
	if !p.exited() {
		// The only failure is a process already gone, which done then says.
		_ = p.signal(syscall.SIGKILL)
	}
	<-p.done
	if p.closeFn != nil {
		p.closeFn()
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// describe reports the exit status (once exited) and the console tail.
func (p *proc) describe() string {
	s := "running"
	if p.exited() {
		s = p.status
	}
	if t := consoleTail(filepath.Join(p.dir, ConsoleFile)); t != "" {
		s += "; console: " + t
	}
	return s
}

// consoleTail returns the last non-blank lines of the console file.
func consoleTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return strings.Join(lines, " | ")
}

// Sweep kills a VMM recorded in dir if it still runs and is ours (its
// command line carries marker), then removes dir.
func Sweep(dir, marker string) {
	if b, err := os.ReadFile(filepath.Join(dir, PidFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cl), marker) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = os.RemoveAll(dir)
}

// Marker is what a VM's VMM command line carries: Sweep and Attach check
// it before they signal a recorded pid.
func Marker(id string) string { return "mcpruntime-microvm-" + id }
