package backend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
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
	r   io.Reader // rw's read side, or a reader holding bytes read past a resync
	wmu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan *proto.Msg
	gen     uint32
	stream  *stream
	exits   map[uint32]*proto.Msg
	// exited holds a channel per kernel generation someone waits on,
	// closed when its exit report arrives.
	exited map[uint32]chan struct{}
	done   chan struct{}
	err    error
}

func newAgentClient(rw io.ReadWriteCloser) *agentClient { return startAgentClient(rw, rw) }

func startAgentClient(rw io.ReadWriteCloser, r io.Reader) *agentClient {
	a := &agentClient{rw: rw, r: r, waiters: map[uint64]chan *proto.Msg{}, exits: map[uint32]*proto.Msg{},
		exited: map[uint32]chan struct{}{}, done: make(chan struct{})}
	go a.readLoop()
	return a
}

// resyncAgent connects to an agent that served another host before (a VM
// that outlived the plugin which started it). Envelopes the agent wrote
// while no host was connected, or the rest of one cut off when the old
// host died, come first on the stream: it sends a sync request with a
// random nonce and drops everything before the agent's echo of it. The
// returned client reads on from there.
func resyncAgent(ctx context.Context, rw io.ReadWriteCloser) (*agentClient, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sync with the agent: %w", err)
	}
	const syncID = 1
	req, err := json.Marshal(&proto.Msg{ID: syncID, Op: proto.OpSync, Data: nonce})
	if err != nil {
		return nil, fmt.Errorf("sync with the agent: %w", err)
	}
	echo, err := json.Marshal(&proto.Msg{ID: syncID, Op: proto.OpSync, Reply: true, Data: nonce})
	if err != nil {
		return nil, fmt.Errorf("sync with the agent: %w", err)
	}
	var want bytes.Buffer
	if err := proto.WriteEnvelope(&want, proto.KindControl, 0, echo); err != nil {
		return nil, fmt.Errorf("sync with the agent: %w", err)
	}
	if err := proto.WriteEnvelope(rw, proto.KindControl, 0, req); err != nil {
		return nil, fmt.Errorf("%w: sync with the agent: %v", errVMGone, err)
	}
	br := bufio.NewReaderSize(rw, 64<<10)
	found := make(chan error, 1)
	go func() { found <- scanFor(br, want.Bytes(), 256<<20) }()
	select {
	case err := <-found:
		if err != nil {
			return nil, fmt.Errorf("%w: sync with the agent: %v", errVMGone, err)
		}
	case <-ctx.Done():
		rw.Close() // ends the scan
		<-found
		return nil, fmt.Errorf("sync with the agent: %w", ctx.Err())
	}
	a := startAgentClient(rw, br)
	a.nextID = syncID
	return a, nil
}

// scanFor reads r until it has read want (Knuth-Morris-Pratt, so a
// partial match never hides the real one), giving up after limit bytes.
func scanFor(r *bufio.Reader, want []byte, limit int) error {
	fail := make([]int, len(want)+1)
	fail[0] = -1
	for i, k := 1, -1; i <= len(want); i++ {
		for k >= 0 && want[k] != want[i-1] {
			k = fail[k]
		}
		k++
		fail[i] = k
	}
	i := 0
	for n := 0; n < limit; n++ {
		c, err := r.ReadByte()
		if err != nil {
			return err
		}
		for i >= 0 && want[i] != c {
			i = fail[i]
		}
		i++
		if i == len(want) {
			return nil
		}
	}
	return fmt.Errorf("no answer to the sync request within %d bytes", limit)
}

func (a *agentClient) readLoop() {
	var err error
	for {
		var kind byte
		var gen uint32
		var payload []byte
		kind, gen, payload, err = proto.ReadEnvelope(a.r)
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
				if ch := a.exited[m.Gen]; ch != nil {
					close(ch)
					delete(a.exited, m.Gen)
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

// exitNotify returns a channel closed once the exit report of kernel
// generation gen has come.
func (a *agentClient) exitNotify(gen uint32) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.exited[gen]
	if ch == nil {
		ch = make(chan struct{})
		if a.exits[gen] != nil {
			close(ch)
			return ch
		}
		a.exited[gen] = ch
	}
	return ch
}

// noteExit records an exit report learnt otherwise (the agent's status,
// for a kernel that exited while no plugin was connected).
func (a *agentClient) noteExit(m *proto.Msg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.exits[m.Gen] = m
	if ch := a.exited[m.Gen]; ch != nil {
		close(ch)
		delete(a.exited, m.Gen)
	}
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
