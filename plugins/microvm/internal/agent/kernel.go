package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// KernelPython is the interpreter in the image; KernelModuleDir holds the
// sdk kernel (precompiled with the rest of the image).
const (
	KernelPython    = "/usr/bin/python3"
	KernelModuleDir = "/usr/lib/mcpruntime"
)

// kernelProc is one generation of the Python kernel. Its frames are read
// with the sdk's codec and relayed to the host whole; the agent itself
// sends it nothing: every per-session setting reaches it from the host's
// kernel.Session (the configure frame).
type kernelProc struct {
	gen    uint32
	cmd    *exec.Cmd
	stdin  chan []byte
	done   chan struct{}
	tail   *sdk.TailWriter
	python string
	// corrupt is set (before done closes) when the kernel wrote something
	// that is not a frame; the kernel was killed for it.
	corrupt error
}

// startKernel starts the kernel and waits for its ready frame. forward gets
// every other frame, encoded; exited is called once the process is gone
// and its output relayed.
func startKernel(gen uint32, forward func(gen uint32, frame []byte), exited func(*kernelProc)) (*kernelProc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(KernelPython, "-I", "-B", "-c", kernel.Bootstrap(KernelModuleDir))
	cmd.Dir = workspaceDir
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + workspaceDir, "LANG=C.UTF-8", "TMPDIR=/tmp",
		"MCPRUNTIME_KERNEL_FDS=3,4", "MCPRUNTIME_LIB=" + libDir, "MCPRUNTIME_WORKSPACE=" + workspaceDir,
	}
	cmd.ExtraFiles = []*os.File{inR, outW}
	t := &sdk.TailWriter{Max: 4096}
	cmd.Stdout, cmd.Stderr = t, t
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cg, err := os.Open(cgroupDir); err == nil {
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	}
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start kernel: %w", err)
	}
	inR.Close()
	outW.Close()
	k := &kernelProc{gen: gen, cmd: cmd, stdin: make(chan []byte, 64), done: make(chan struct{}), tail: t}
	ready := make(chan *kernel.Frame, 1)
	go k.writeLoop(inW)
	go func() {
		k.readLoop(outR, forward, ready)
		// The error only repeats the exit status read below.
		_ = cmd.Wait()
		close(k.done)
		exited(k)
	}()
	select {
	case f := <-ready:
		k.python = f.Python
		return k, nil
	case <-k.done:
		return nil, fmt.Errorf("kernel exited during start-up (%s): %s", k.status(), t.String())
	case <-time.After(60 * time.Second):
		k.kill()
		return nil, errors.New("kernel did not become ready within 60s")
	}
}

// writeLoop feeds the kernel's request pipe, so a kernel that stops reading
// never blocks the agent's control loop.
func (k *kernelProc) writeLoop(w *os.File) {
	defer w.Close()
	for {
		select {
		case b := <-k.stdin:
			if _, err := w.Write(b); err != nil {
				return
			}
		case <-k.done:
			return
		}
	}
}

// readLoop relays the kernel's frames until its channel closes. The ready
// frame is the agent's (start_kernel answers with it). A kernel that
// writes something other than a frame (sandbox code can write to the
// channel's descriptor) is killed: its channel is unusable, and what it
// wrote never reaches the host.
func (k *kernelProc) readLoop(r *os.File, forward func(uint32, []byte), ready chan<- *kernel.Frame) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	var buf bytes.Buffer
	for {
		f, err := kernel.ReadFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				k.corrupt = err
				logf("kernel %d: %v; killing it", k.gen, err)
				k.kill()
				// Drain, so the kernel's last writes cannot block its exit.
				_, _ = io.Copy(io.Discard, br)
			}
			return
		}
		if f.Type == "ready" && ready != nil {
			ready <- f
			ready = nil
			continue
		}
		buf.Reset()
		if err := kernel.WriteFrame(&buf, f); err != nil {
			logf("kernel %d: %v", k.gen, err)
			continue
		}
		forward(k.gen, append([]byte(nil), buf.Bytes()...))
	}
}

// send queues a frame from the host (one whole frame per envelope) for
// the kernel.
func (k *kernelProc) send(b []byte) {
	select {
	case k.stdin <- b:
	case <-k.done:
	}
}

func (k *kernelProc) interrupt() error {
	return k.cmd.Process.Signal(syscall.SIGINT)
}

// kill stops the kernel and the processes it started (it leads its own
// session). It does not wait.
func (k *kernelProc) kill() {
	// Errors mean the process (group) is gone already.
	_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
	_ = k.cmd.Process.Kill()
}

func (k *kernelProc) alive() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// exitInfo returns the exit code and signal of a finished kernel.
func (k *kernelProc) exitInfo() (code, sig int) {
	ps := k.cmd.ProcessState
	if ps == nil {
		return 1, 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ps.ExitCode(), 0
}

func (k *kernelProc) status() string {
	ps := k.cmd.ProcessState
	if ps == nil {
		return "running"
	}
	s := fmt.Sprintf("exit status %d", ps.ExitCode())
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		s = "killed by signal " + ws.Signal().String()
	}
	if k.corrupt != nil {
		s += " (killed after it wrote a malformed frame: " + k.corrupt.Error() + ")"
	}
	return s
}
