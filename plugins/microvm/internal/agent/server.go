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
	quota quota

	kmu    sync.Mutex // serialises the kernel's lifecycle
	kernel *kernelProc
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
		if errors.Is(err, errHostGone) {
			// The host went away, perhaps in the middle of an envelope:
			// what was read of it is dropped, and the next host's first
			// envelope is read from its start.
			logf("host disconnected; waiting for it to connect again")
			continue
		}
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
				s.reply(m, nil, s.interrupt(m.Gen))
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
	case proto.OpStopKernel:
		err = s.stopKernel(m.Gen)
	case proto.OpStatus:
		r = s.status()
	case proto.OpSync:
		r = &proto.Msg{Data: m.Data}
	case proto.OpAttach:
		err = s.attach(m.Session)
	case proto.OpReseed:
		err = s.reseed(m.Seed)
	case proto.OpScan:
		var res *scanResult
		if res, err = s.files.scan(); err == nil {
			r = &proto.Msg{Changed: res.changed, Deleted: res.deleted, Examined: res.examined}
		}
	case proto.OpRead:
		r, err = s.files.read(m)
	case proto.OpWrite:
		err = s.files.write(m)
	case proto.OpWriteBatch:
		err = s.files.writeBatch(m)
	case proto.OpReadBatch:
		r, err = s.files.readBatch(m)
	case proto.OpPlaceholder:
		err = s.files.lazy.placeholder(m)
	case proto.OpFill:
		err = s.files.lazy.fill(m, s.files)
	case proto.OpMkdir:
		err = s.files.mkdir(m)
	case proto.OpRemove:
		err = s.files.remove(m)
	case proto.OpWipe:
		err = s.files.wipe()
	case proto.OpQuota:
		err = s.quota.apply(m.Length, m.Offset)
	case proto.OpWorkspaceAttach:
		var t string
		t, err = s.files.attachSlot()
		r = &proto.Msg{Data: []byte(t)}
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

// startKernel replaces the kernel with a fresh one of generation gen. What
// the previous generations started is killed first (the sandbox cgroup
// holds only kernels and their processes). The host's kernel.Session then
// configures the kernel for its session.
func (s *server) startKernel(gen uint32) (*proto.Msg, error) {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if old := s.kernel; old != nil {
		s.stopLocked(old)
	}
	s.kernel = nil
	forward := func(g uint32, frame []byte) { s.send(proto.KindKernel, g, frame) }
	k, err := startKernel(gen, forward, s.kernelExited)
	if err != nil {
		return nil, err
	}
	s.kernel = k
	return &proto.Msg{Pid: k.cmd.Process.Pid, Python: k.python, Gen: gen}, nil
}

// stopKernel kills kernel generation gen, if it is the current one, with
// every process of the sandbox, and waits until it has exited (its exit
// report then follows).
func (s *server) stopKernel(gen uint32) error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if k := s.kernel; k != nil && k.gen == gen {
		s.stopLocked(k)
	}
	return nil
}

func (s *server) stopLocked(k *kernelProc) {
	k.kill()
	if err := killCgroup(); err != nil {
		logf("kill the sandbox's leftover processes: %v", err)
	}
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		logf("kernel %d did not exit within 10s of SIGKILL", k.gen)
	}
}

// killCgroup kills every process left in the sandbox cgroup (code's
// processes that left the kernel's session).
func killCgroup() error {
	err := os.WriteFile(cgroupDir+"/cgroup.kill", []byte("1"), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no cgroup (logged at boot): the session kill has to do
	}
	return err
}

// status reports the current kernel generation: its pid while it runs,
// its exit report once it has exited.
func (s *server) status() *proto.Msg {
	s.kmu.Lock()
	k := s.kernel
	s.kmu.Unlock()
	if k == nil {
		return &proto.Msg{}
	}
	r := &proto.Msg{Gen: k.gen, Python: k.python}
	if k.alive() {
		r.Pid = k.cmd.Process.Pid
		return r
	}
	r.ExitCode, r.Signal = k.exitInfo()
	r.Status, r.Tail = k.status(), k.tail.String()
	return r
}

// kernelExited reports a dead kernel after its last frame was relayed.
func (s *server) kernelExited(k *kernelProc) {
	code, sig := k.exitInfo()
	s.sendMsg(&proto.Msg{Op: proto.EventKernelExit, Gen: k.gen, ExitCode: code, Signal: sig, Status: k.status(), Tail: k.tail.String()})
}

// attach applies a session's sandbox settings: the process limit, and the
// libraries the host just wrote sealed read-only. A limit that cannot be
// applied or libraries that cannot be sealed fail the attach: the session
// must not run without them.
func (s *server) attach(cfg *proto.SessionConfig) error {
	if cfg == nil {
		return errors.New("attach without a session")
	}
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if cfg.Pids > 0 {
		if err := setPids(cfg.Pids); err != nil {
			return fmt.Errorf("the session's process limit (%d) cannot be applied: %w", cfg.Pids, err)
		}
	} else if err := setPids(defaultPids); err != nil {
		// The default is a guard, not a limit the session asked for.
		logf("default process limit: %v", err)
	}
	if err := sealLib(); err != nil {
		return fmt.Errorf("the session's libraries cannot be made read-only: %w", err)
	}
	return nil
}

func (s *server) interrupt(gen uint32) error {
	s.kmu.Lock()
	k := s.kernel
	s.kmu.Unlock()
	if k == nil || !k.alive() || (gen != 0 && k.gen != gen) {
		return fmt.Errorf("kernel generation %d is not running", gen)
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
	// Python's random module is reseeded by the host's configure frame
	// that follows a restore (kernel.Setup.Reseed).
	return nil
}

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
// code (the host filled the tmpfs below just before). Sealed is claimed
// only once the read-only remount took.
func sealLib() error {
	if libSealed.Load() {
		return nil
	}
	if err := unix.Mount(libDir, libDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", libDir, err)
	}
	if err := unix.Mount("", libDir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		// Undo the bind, so the next attempt starts from the tmpfs again.
		if uerr := unix.Unmount(libDir, unix.MNT_DETACH); uerr != nil {
			logf("undo the bind of %s: %v", libDir, uerr)
		}
		return fmt.Errorf("remount %s read-only: %w", libDir, err)
	}
	libSealed.Store(true)
	return nil
}

// unsealLib removes the read-only bind so a new session's libraries can be
// written.
func unsealLib() {
	if libSealed.Load() && unix.Unmount(libDir, unix.MNT_DETACH) == nil {
		libSealed.Store(false)
	}
}
