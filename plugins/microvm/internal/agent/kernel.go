package agent

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// KernelPython is the interpreter in the image; KernelModuleDir holds the
// sdk kernel (precompiled with the rest of the image).
const (
	KernelPython    = "/usr/bin/python3"
	KernelModuleDir = "/usr/lib/mcpruntime"
)

// privateBase marks execution ids the agent uses for its own cells, so
// their frames are never relayed to the host.
const privateBase = int64(1) << 52

// kernelFrame is the part of a kernel frame the agent looks at.
type kernelFrame struct {
	Type    string `json:"type"`
	ID      int64  `json:"id"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Stream  string `json:"stream"`
	Data    string `json:"data"`
	Python  string `json:"python"`
	Pid     int    `json:"pid"`
}

// kernelProc is one incarnation of the Python kernel.
type kernelProc struct {
	gen    uint32
	cmd    *exec.Cmd
	stdin  chan []byte
	ready  chan kernelFrame
	done   chan struct{}
	tail   *sdk.TailWriter
	python string

	privMu  sync.Mutex
	private map[int64]chan kernelFrame
	nextID  atomic.Int64
}

// startKernel starts the kernel and waits for its ready frame. forward gets
// every frame that belongs to the host; exited is called once the process
// is gone and its output drained.
func startKernel(gen uint32, forward func(gen uint32, frame []byte), exited func(*kernelProc)) (*kernelProc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	code := fmt.Sprintf("import sys; sys.path.insert(0, %q); import mcpruntime_kernel; mcpruntime_kernel.main()", KernelModuleDir)
	cmd := exec.Command(KernelPython, "-I", "-B", "-c", code)
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
	k := &kernelProc{
		gen: gen, cmd: cmd, stdin: make(chan []byte, 64), ready: make(chan kernelFrame, 1),
		done: make(chan struct{}), tail: t, private: map[int64]chan kernelFrame{},
	}
	k.nextID.Store(privateBase)
	go k.writeLoop(inW)
	go func() {
		k.readLoop(outR, forward)
		_ = cmd.Wait()
		close(k.done)
		exited(k)
	}()
	select {
	case f := <-k.ready:
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

func (k *kernelProc) readLoop(r *os.File, forward func(uint32, []byte)) {
	defer r.Close()
	ready := k.ready
	var head [4]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[:])
		frame := make([]byte, 4+n)
		copy(frame, head[:])
		if _, err := io.ReadFull(r, frame[4:]); err != nil {
			return
		}
		// Only the ready frame and the agent's own cells are decoded;
		// everything else is relayed untouched.
		if ready != nil || k.hasPrivate() {
			var f kernelFrame
			if json.Unmarshal(frame[4:], &f) == nil {
				if f.Type == "ready" && ready != nil {
					ready <- f
					ready = nil
					continue
				}
				if f.ID >= privateBase {
					k.deliverPrivate(f)
					continue
				}
			}
		}
		forward(k.gen, frame)
	}
}

func (k *kernelProc) hasPrivate() bool {
	k.privMu.Lock()
	defer k.privMu.Unlock()
	return len(k.private) > 0
}

func (k *kernelProc) deliverPrivate(f kernelFrame) {
	k.privMu.Lock()
	ch := k.private[f.ID]
	k.privMu.Unlock()
	if ch != nil {
		select {
		case ch <- f:
		default:
		}
	}
}

// send queues raw bytes (whole frames from the host) for the kernel.
func (k *kernelProc) send(b []byte) {
	select {
	case k.stdin <- b:
	case <-k.done:
	}
}

// runPrivate executes Python in the kernel on the agent's behalf, in a
// throw-away namespace so the session's globals are untouched.
func (k *kernelProc) runPrivate(src string, timeout time.Duration) error {
	id := k.nextID.Add(1)
	ch := make(chan kernelFrame, 64)
	k.privMu.Lock()
	k.private[id] = ch
	k.privMu.Unlock()
	defer func() {
		k.privMu.Lock()
		delete(k.private, id)
		k.privMu.Unlock()
	}()
	code := fmt.Sprintf("exec(compile(__import__('base64').b64decode(%q).decode(), '<mcpruntime-agent>', 'exec'), {})",
		base64.StdEncoding.EncodeToString([]byte(src)))
	body, _ := json.Marshal(map[string]any{"type": "exec", "id": id, "code": code, "output_limit": 1 << 16})
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	k.send(frame)
	var out strings.Builder
	deadline := time.After(timeout)
	for {
		select {
		case f := <-ch:
			switch f.Type {
			case "out":
				out.WriteString(f.Data)
			case "result":
				if f.Kind != "" && f.Kind != "none" {
					return fmt.Errorf("%s: %s", f.Message, out.String())
				}
				return nil
			}
		case <-k.done:
			return fmt.Errorf("kernel exited (%s)", k.status())
		case <-deadline:
			return fmt.Errorf("agent cell did not finish within %s", timeout)
		}
	}
}

func (k *kernelProc) interrupt() error {
	if k.cmd.Process == nil {
		return errors.New("kernel not running")
	}
	return k.cmd.Process.Signal(syscall.SIGINT)
}

func (k *kernelProc) kill() {
	if k.cmd.Process != nil {
		// The kernel leads its own session: take its children too.
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		_ = k.cmd.Process.Kill()
	}
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
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}
