package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// Main is the agent's entry point as PID 1. It never returns: on a fatal
// error it prints the reason on the console and reboots, which makes the VMM
// exit (-no-reboot) so the host sees a dead VM, not a hung one.
func Main() {
	if err := run(); err != nil {
		logf("fatal: %v", err)
	}
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

type server struct {
	link  link
	wmu   sync.Mutex
	files *files

	kmu     sync.Mutex // serialises kernel lifecycle and agent cells
	kernel  *kernelProc
	session *proto.SessionConfig
}

func run() error {
	if err := boot(); err != nil {
		return err
	}
	l, err := openLink()
	if err != nil {
		return err
	}
	s := &server{link: l, files: newFiles()}
	return s.serve()
}

func (s *server) send(kind byte, gen uint32, payload []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := proto.WriteEnvelope(s.link, kind, gen, payload); err != nil {
		logf("write to host: %v", err)
	}
}

func (s *server) sendMsg(m *proto.Msg) {
	b, err := json.Marshal(m)
	if err != nil {
		logf("encode: %v", err)
		return
	}
	s.send(proto.KindControl, 0, b)
}

func (s *server) serve() error {
	for {
		kind, gen, payload, err := proto.ReadEnvelope(s.link)
		if err != nil {
			return fmt.Errorf("read from host: %w", err)
		}
		switch kind {
		case proto.KindKernel:
			s.kmu.Lock()
			k := s.kernel
			s.kmu.Unlock()
			if k != nil && k.gen == gen {
				k.send(payload)
			}
		case proto.KindControl:
			m := &proto.Msg{}
			if err := json.Unmarshal(payload, m); err != nil {
				logf("bad control message: %v", err)
				continue
			}
			if m.Op == proto.OpInterrupt {
				// Not queued behind anything: an interrupt must land while
				// other requests wait.
				s.reply(m, nil, s.interrupt())
				continue
			}
			go s.handle(m)
		}
	}
}

func (s *server) reply(req *proto.Msg, r *proto.Msg, err error) {
	if r == nil {
		r = &proto.Msg{}
	}
	r.ID, r.Op, r.Reply = req.ID, req.Op, true
	if err != nil {
		r.Err = err.Error()
	}
	s.sendMsg(r)
}

func (s *server) handle(m *proto.Msg) {
	var r *proto.Msg
	var err error
	switch m.Op {
	case proto.OpPing:
		r = &proto.Msg{Release: release()}
	case proto.OpStartKernel:
		r, err = s.startKernel(m.Gen)
	case proto.OpAttach:
		err = s.attach(m.Session)
	case proto.OpReseed:
		err = s.reseed(m.Seed)
	case proto.OpScan:
		r = &proto.Msg{}
		r.Changed, r.Deleted, err = s.files.scan()
	case proto.OpRead:
		r, err = s.files.read(m)
	case proto.OpWrite:
		err = s.files.write(m)
	case proto.OpMkdir:
		err = s.files.mkdir(m)
	case proto.OpRemove:
		err = s.files.remove(m)
	case proto.OpWipe:
		err = s.files.wipe()
	case proto.OpPoweroff:
		s.reply(m, nil, nil)
		time.Sleep(20 * time.Millisecond)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		return
	default:
		err = fmt.Errorf("unknown operation %q", m.Op)
	}
	s.reply(m, r, err)
}

// startKernel replaces the kernel with a fresh one of generation gen and
// applies the session's settings to it.
func (s *server) startKernel(gen uint32) (*proto.Msg, error) {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if old := s.kernel; old != nil && old.alive() {
		old.kill()
		<-old.done
	}
	s.kernel = nil
	forward := func(g uint32, frame []byte) { s.send(proto.KindKernel, g, frame) }
	k, err := startKernel(gen, forward, s.kernelExited)
	if err != nil {
		return nil, err
	}
	s.kernel = k
	if s.session != nil {
		if err := s.applySession(k, s.session); err != nil {
			return nil, err
		}
	} else {
		// A pooled kernel: run the code paths a session's first cells take
		// (under emulation, first-time code is translated, which is slow)
		// so the session does not pay for it.
		if err := k.runPrivate(warmup, 30*time.Second); err != nil {
			return nil, err
		}
		_, _, _ = s.files.scan()
	}
	return &proto.Msg{Pid: k.cmd.Process.Pid, Python: k.python, Gen: gen}, nil
}

// kernelExited reports a dead kernel after its last frame was relayed.
func (s *server) kernelExited(k *kernelProc) {
	code, sig := k.exitInfo()
	s.sendMsg(&proto.Msg{Op: proto.EventKernelExit, Gen: k.gen, ExitCode: code, Signal: sig, Status: k.status(), Tail: k.tail.String()})
}

func (s *server) attach(cfg *proto.SessionConfig) error {
	if cfg == nil {
		return errors.New("attach without a session")
	}
	s.kmu.Lock()
	defer s.kmu.Unlock()
	s.session = cfg
	if cfg.Pids > 0 {
		_ = setPids(cfg.Pids)
	} else {
		_ = setPids(defaultPids)
	}
	sealLib()
	if s.kernel == nil || !s.kernel.alive() {
		return nil // applied when the next kernel starts
	}
	return s.applySession(s.kernel, cfg)
}

// applySession sets the session's environment and memory limit inside a
// running kernel (a pooled kernel starts before its session is known).
func (s *server) applySession(k *kernelProc, cfg *proto.SessionConfig) error {
	env, _ := json.Marshal(cfg.Env)
	src := fmt.Sprintf("import os, sys, json, resource\nos.environ.update(json.loads(%q) or {})\nm = %d\nif m > 0:\n    resource.setrlimit(resource.RLIMIT_AS, (m, m))\n%s",
		string(env), cfg.MemoryBytes, reseedPython)
	if err := k.runPrivate(src, 30*time.Second); err != nil {
		return fmt.Errorf("apply session settings: %w", err)
	}
	return nil
}

func (s *server) interrupt() error {
	s.kmu.Lock()
	k := s.kernel
	s.kmu.Unlock()
	if k == nil || !k.alive() {
		return errors.New("no kernel running")
	}
	return k.interrupt()
}

// Linux random ioctls (include/uapi/linux/random.h).
const (
	rndAddEntropy = 0x40085203
	rndReseedCRNG = 0x5207
)

// reseed mixes host randomness into the guest kernel's pool and forces a
// CRNG reseed, then reseeds Python's random module: VMs restored from one
// snapshot otherwise produce the same "random" numbers.
func (s *server) reseed(seed []byte) error {
	if len(seed) == 0 {
		return errors.New("empty seed")
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 8+len(seed))
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(seed)*8))
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(seed)))
	copy(buf[8:], seed)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0); e != 0 {
		return fmt.Errorf("RNDRESEEDCRNG: %w", e)
	}
	// Python's random module is reseeded by the attach that follows a
	// restore (applySession), saving one cell on a cold guest.
	return nil
}

// reseedPython reseeds Python's random module if the session imported it.
const reseedPython = "r = sys.modules.get('random')\nif r is not None:\n    r.seed()\n"

// warmup exercises what a first cell and a session attach run.
const warmup = "import os, sys, json, resource\nos.environ.update(json.loads('{}'))\nx = [i * 2 for i in range(100)]\nprint(len(x))\n"

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return strings.TrimRight(string(u.Release[:]), "\x00")
}

// libSealed: /mcpruntime/lib is bind-mounted read-only over its tmpfs.
var libSealed atomic.Bool

// sealLib makes the session's skills and tool stubs read-only for sandbox
// code (the host filled the tmpfs below just before).
func sealLib() {
	if libSealed.Load() {
		return
	}
	if unix.Mount(libDir, libDir, "", unix.MS_BIND, "") != nil {
		return
	}
	_ = unix.Mount("", libDir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
	libSealed.Store(true)
}

// unsealLib removes the read-only bind so a new session's libraries can be
// written.
func unsealLib() {
	if libSealed.Load() && unix.Unmount(libDir, unix.MNT_DETACH) == nil {
		libSealed.Store(false)
	}
}
