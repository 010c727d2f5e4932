package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// link is the agent's end of the host channel. Reads never return EOF: a
// host that disconnects (a VM restored from a snapshot gets a new host
// socket; a crashed plugin is replaced by one that adopts the VM) is
// waited for instead. The first read after a disconnect returns
// errHostGone, so a partly read envelope of the old host is dropped.
type link interface {
	io.ReadWriter
}

// errHostGone: the host disconnected since the last read.
var errHostGone = errors.New("host disconnected")

// openLink opens the channel the kernel command line names:
// `mcpruntime.channel=vsock` (Cloud Hypervisor) or the virtio-serial port.
func openLink() (link, error) {
	if cmdlineValue("mcpruntime.channel") == "vsock" {
		return listenVsock(proto.VsockPort)
	}
	return openSerial(proto.PortName, 20*time.Second)
}

// serialLink is a virtio-serial port. A read of 0 bytes means the host side
// is not connected; it is retried. (A write while no host is connected
// blocks until one is.)
type serialLink struct {
	f *os.File
	// got: data arrived since the host last disconnected.
	got bool
}

func openSerial(name string, wait time.Duration) (*serialLink, error) {
	deadline := time.Now().Add(wait)
	for {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == name {
				dev := "/dev/" + filepath.Base(filepath.Dir(p))
				if err := waitFor(dev, 5*time.Second); err != nil {
					return nil, err
				}
				f, err := os.OpenFile(dev, os.O_RDWR, 0)
				if err != nil {
					return nil, fmt.Errorf("open %s: %w", dev, err)
				}
				return &serialLink{f: f}, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio-serial port %q not found", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *serialLink) Read(p []byte) (int, error) {
	for {
		n, err := s.f.Read(p)
		if n > 0 {
			s.got = true
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		if s.got {
			s.got = false
			return 0, errHostGone
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *serialLink) Write(p []byte) (int, error) { return s.f.Write(p) }

// vsockLink accepts host connections on a vsock port; each new connection
// replaces the previous one.
type vsockLink struct {
	lfd int
	mu  sync.Mutex
	cur *os.File
	got chan struct{}
	// read is the connection the last read used (only the reader uses it).
	read *os.File
}

func listenVsock(port uint32) (*vsockLink, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		return nil, fmt.Errorf("vsock bind: %w", err)
	}
	if err := unix.Listen(fd, 4); err != nil {
		return nil, fmt.Errorf("vsock listen: %w", err)
	}
	v := &vsockLink{lfd: fd, got: make(chan struct{})}
	go v.acceptLoop()
	return v, nil
}

func (v *vsockLink) acceptLoop() {
	first := true
	for {
		nfd, _, err := unix.Accept(v.lfd)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		v.mu.Lock()
		if v.cur != nil {
			v.cur.Close()
		}
		v.cur = os.NewFile(uintptr(nfd), "vsock")
		v.mu.Unlock()
		if first {
			close(v.got)
			first = false
		}
	}
}

func (v *vsockLink) conn() *os.File {
	<-v.got
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cur
}

func (v *vsockLink) Read(p []byte) (int, error) {
	for {
		c := v.conn()
		if v.read != nil && c != v.read {
			v.read = c
			return 0, errHostGone
		}
		v.read = c
		n, err := c.Read(p)
		if n > 0 {
			return n, nil
		}
		// A closed connection (err set) is replaced by the next accept.
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
			logf("vsock read: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (v *vsockLink) Write(p []byte) (int, error) { return v.conn().Write(p) }
