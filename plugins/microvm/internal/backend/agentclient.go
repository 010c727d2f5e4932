package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// errVMGone means the agent channel closed: the VM died or was killed.
var errVMGone = errors.New("microVM stopped")

// agentClient is the host end of the agent channel: it matches control
// replies to requests and routes kernel bytes of the current generation to
// the kernel.Conn reading them.
type agentClient struct {
	rw  io.ReadWriteCloser
	wmu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan *proto.Msg
	gen     uint32
	stream  *stream
	exits   map[uint32]*proto.Msg
	done    chan struct{}
	err     error
}

func newAgentClient(rw io.ReadWriteCloser) *agentClient {
	a := &agentClient{rw: rw, waiters: map[uint64]chan *proto.Msg{}, exits: map[uint32]*proto.Msg{}, done: make(chan struct{})}
	go a.readLoop()
	return a
}

func (a *agentClient) readLoop() {
	var err error
	for {
		var kind byte
		var gen uint32
		var payload []byte
		kind, gen, payload, err = proto.ReadEnvelope(a.rw)
		if err != nil {
			break
		}
		switch kind {
		case proto.KindKernel:
			a.mu.Lock()
			if gen == a.gen && a.stream != nil {
				a.stream.write(payload)
			}
			a.mu.Unlock()
		case proto.KindControl:
			m := &proto.Msg{}
			if json.Unmarshal(payload, m) != nil {
				continue
			}
			a.mu.Lock()
			if m.Reply {
				if ch := a.waiters[m.ID]; ch != nil {
					ch <- m
					delete(a.waiters, m.ID)
				}
			} else if m.Op == proto.EventKernelExit {
				a.exits[m.Gen] = m
				if m.Gen == a.gen && a.stream != nil {
					a.stream.close()
				}
			}
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	a.err = fmt.Errorf("%w: agent channel: %v", errVMGone, err)
	if a.stream != nil {
		a.stream.close()
	}
	for id, ch := range a.waiters {
		close(ch)
		delete(a.waiters, id)
	}
	a.mu.Unlock()
	close(a.done)
}

func (a *agentClient) alive() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

func (a *agentClient) write(kind byte, gen uint32, payload []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if err := proto.WriteEnvelope(a.rw, kind, gen, payload); err != nil {
		return fmt.Errorf("%w: write: %v", errVMGone, err)
	}
	return nil
}

// call sends a request and waits for its reply.
func (a *agentClient) call(ctx context.Context, m *proto.Msg) (*proto.Msg, error) {
	ch := make(chan *proto.Msg, 1)
	a.mu.Lock()
	if a.err != nil {
		err := a.err
		a.mu.Unlock()
		return nil, err
	}
	a.nextID++
	m.ID = a.nextID
	a.waiters[m.ID] = ch
	a.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := a.write(proto.KindControl, 0, b); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, a.closedErr()
		}
		if r.Err != "" {
			return r, fmt.Errorf("agent %s: %s", m.Op, r.Err)
		}
		return r, nil
	case <-ctx.Done():
		a.mu.Lock()
		delete(a.waiters, m.ID)
		a.mu.Unlock()
		return nil, fmt.Errorf("agent %s: %w", m.Op, ctx.Err())
	}
}

func (a *agentClient) closedErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	return errVMGone
}

// openKernel makes gen the current kernel generation and returns the ends
// a kernel.Conn reads and writes.
func (a *agentClient) openKernel(gen uint32) (io.Reader, io.Writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stream != nil {
		a.stream.close()
	}
	a.gen = gen
	a.stream = newStream()
	if a.err != nil {
		a.stream.close()
	}
	return a.stream, &kernelWriter{a: a, gen: gen}
}

// exitOf returns the exit report of a kernel generation, if it came.
func (a *agentClient) exitOf(gen uint32) *proto.Msg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exits[gen]
}

func (a *agentClient) close() { _ = a.rw.Close() }

type kernelWriter struct {
	a   *agentClient
	gen uint32
}

func (w *kernelWriter) Write(p []byte) (int, error) {
	if err := w.a.write(proto.KindKernel, w.gen, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// stream is an unbounded in-memory pipe: the agent reader never blocks on
// a kernel.Conn that is not reading, so control replies keep flowing.
type stream struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

func newStream() *stream {
	s := &stream{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *stream) write(p []byte) {
	s.mu.Lock()
	if !s.closed {
		s.buf = append(s.buf, p...)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) == 0 && !s.closed {
		s.cond.Wait()
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		s.buf = nil
	}
	return n, nil
}
