package vmm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// PidFile is written into a VM's directory so a later plugin process can
// find and kill a VMM left behind by a crash (see Sweep).
const PidFile = "vmm.pid"

// proc supervises a VMM process: console and error output go to a bounded
// tail (for death reports) and the debug log.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	tail   *ring
	status string
}

func startProc(cmd *exec.Cmd, dir string, log hclog.Logger) (*proc, error) {
	p := &proc{cmd: cmd, done: make(chan struct{}), tail: &ring{max: 64}}
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// Die with the plugin; the sweep catches what this misses.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	_ = os.WriteFile(filepath.Join(dir, PidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	var wg sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := strings.TrimRight(sc.Text(), "\r")
				p.tail.add(line)
				if log != nil {
					log.Debug("vm", "line", line)
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		err := cmd.Wait()
		p.status = describeExit(cmd, err)
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

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
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
	if t := p.tail.String(); t != "" {
		s += "; console: " + t
	}
	return s
}

// ring keeps the last lines of output.
type ring struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (r *ring) add(l string) {
	if strings.TrimSpace(l) == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	if len(r.lines) > r.max {
		r.lines = r.lines[len(r.lines)-r.max:]
	}
}

// String returns the last lines, the most telling (panic, error) kept.
func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := r.lines
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
