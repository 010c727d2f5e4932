package pool

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// thing is a test item: it records whether it was destroyed (twice is a
// failure) and can be made to die.
type thing struct {
	id        int64
	key       string
	dead      atomic.Bool
	destroyed atomic.Int32
}

// maker makes things and counts what happened to them.
type maker struct {
	t       *testing.T
	next    atomic.Int64
	mu      sync.Mutex
	made    []*thing
	fail    atomic.Bool   // Create fails while set
	gate    chan struct{} // if set, Create waits for it (or its ctx)
	key     string
	warmed  atomic.Int32
	creates atomic.Int32
}

var errBoom = errors.New("boom")

func newMaker(t *testing.T) *maker { return &maker{t: t} }

func (m *maker) create(ctx context.Context) (*thing, error) { return m.createKey(ctx, m.key) }

func (m *maker) createKey(ctx context.Context, key string) (*thing, error) {
	m.creates.Add(1)
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if m.fail.Load() {
		return nil, errBoom
	}
	th := &thing{id: m.next.Add(1), key: key}
	m.mu.Lock()
	m.made = append(m.made, th)
	m.mu.Unlock()
	return th, nil
}

func (m *maker) lifecycle() Lifecycle[*thing] {
	return Lifecycle[*thing]{
		Create: m.create,
		Warm:   func(context.Context, *thing) error { m.warmed.Add(1); return nil },
		Alive:  func(th *thing) bool { return !th.dead.Load() },
		Destroy: func(th *thing) {
			if th.destroyed.Add(1) > 1 {
				m.t.Errorf("thing %d destroyed twice", th.id)
			}
		},
	}
}

// all returns every thing made so far.
func (m *maker) all() []*thing {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*thing(nil), m.made...)
}

func (m *maker) destroyedCount() int {
	n := 0
	for _, th := range m.all() {
		n += int(th.destroyed.Load())
	}
	return n
}

// recv receives from ch, failing the test instead of hanging.
func recv[V any](t *testing.T, what string, ch <-chan V) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGetTakesWarmItemAndRefills(t *testing.T) {
	m := newMaker(t)
	p := New(2, m.lifecycle(), WithRefillDelay(time.Millisecond))
	defer p.Close()
	eventually(t, "a full pool", func() bool { return p.Len() == 2 })
	th, pooled, err := p.Get(context.Background())
	if err != nil || !pooled || th == nil {
		t.Fatalf("Get = %v, %v, %v; want a pooled thing", th, pooled, err)
	}
	if th.destroyed.Load() != 0 {
		t.Fatal("Get handed out a destroyed thing")
	}
	if m.warmed.Load() < 2 {
		t.Fatalf("%d things warmed, want every pooled one", m.warmed.Load())
	}
	eventually(t, "the refill", func() bool { return p.Len() == 2 })
	if n := len(m.all()); n != 3 {
		t.Fatalf("%d things made, want 3 (two ahead, one replacement)", n)
	}
}

func TestSizeZeroMeansNoPool(t *testing.T) {
	m := newMaker(t)
	p := New(0, m.lifecycle())
	th, pooled, err := p.Get(context.Background())
	if err != nil || pooled || th == nil {
		t.Fatalf("Get = %v, %v, %v; want a directly made thing", th, pooled, err)
	}
	p.Close()
	if n, w := m.creates.Load(), m.warmed.Load(); n != 1 || w != 0 || p.Len() != 0 || p.Size() != 0 {
		t.Fatalf("size 0: %d creates, %d warmed, %d idle, size %d; want only Get's create", n, w, p.Len(), p.Size())
	}
}

func TestGetSurfacesCreateError(t *testing.T) {
	m := newMaker(t)
	m.fail.Store(true)
	p := New(1, m.lifecycle(), WithBackoff(time.Hour, time.Hour))
	defer p.Close()
	if _, _, err := p.Get(context.Background()); !errors.Is(err, errBoom) {
		t.Fatalf("Get error = %v, want the create's %v", err, errBoom)
	}
}

func TestRefillWaitsForDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	m := newMaker(t)
	var (
		mu      sync.Mutex
		starts  []time.Time
		creates = func(ctx context.Context) (*thing, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return m.create(ctx)
		}
	)
	lc := m.lifecycle()
	lc.Create = creates
	p := New(1, lc, WithRefillDelay(delay))
	defer p.Close()
	eventually(t, "a full pool", func() bool { return p.Len() == 1 })
	took := time.Now()
	if _, pooled, _ := p.Take(context.Background()); !pooled {
		t.Fatal("Take found no item in a full pool")
	}
	eventually(t, "the replacement", func() bool { return p.Len() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(starts) != 2 {
		t.Fatalf("%d creates, want 2", len(starts))
	}
	if gap := starts[1].Sub(took); gap < delay {
		t.Fatalf("replacement started %s after the take, want at least %s", gap, delay)
	}
}

// TestBackoff records the waits the filler asks for: doubling from the
// first to the cap while Create fails, and from the first again after a
// success.
func TestBackoff(t *testing.T) {
	m := newMaker(t)
	m.fail.Store(true)
	var logs syncBuffer
	waits := make(chan time.Duration)
	step := make(chan bool)
	p := New(1, m.lifecycle(), WithBackoff(10*time.Millisecond, 80*time.Millisecond),
		WithLogger(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})),
		func(s *settings) {
			s.wait = func(ctx context.Context, d time.Duration) bool {
				select {
				case waits <- d:
				case <-ctx.Done():
					return false
				}
				select {
				case ok := <-step:
					return ok
				case <-ctx.Done():
					return false
				}
			}
		})
	defer p.Close()
	want := []time.Duration{10, 20, 40, 80, 80}
	for i, w := range want {
		if got := recv(t, "a backoff wait", waits); got != w*time.Millisecond {
			t.Fatalf("wait %d after failures: %s, want %s", i+1, got, w*time.Millisecond)
		}
		step <- true
	}
	if got := recv(t, "a backoff wait", waits); got != 80*time.Millisecond {
		t.Fatalf("wait at the cap: %s", got)
	}
	// The next attempt succeeds; the pool is full; a take makes it try
	// again, and that failure waits the first backoff again.
	m.fail.Store(false)
	step <- true
	eventually(t, "a made item", func() bool { return p.Len() == 1 })
	m.fail.Store(true)
	if _, pooled, _ := p.Take(context.Background()); !pooled {
		t.Fatal("no pooled item")
	}
	if got := recv(t, "a backoff wait", waits); got != 10*time.Millisecond {
		t.Fatalf("wait after a success and a failure: %s, want it reset to 10ms", got)
	}
	for _, s := range []string{"could not make an item", "boom", "making items works again"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}

// TestFailingPoolDoesNotSpin: with real timers, a pool whose Create always
// fails makes few attempts (timers never fire early, so this cannot flake
// the other way).
func TestFailingPoolDoesNotSpin(t *testing.T) {
	m := newMaker(t)
	m.fail.Store(true)
	start := time.Now()
	p := New(1, m.lifecycle(), WithBackoff(20*time.Millisecond, time.Second))
	eventually(t, "four attempts", func() bool { return m.creates.Load() >= 4 })
	p.Close()
	// Attempts 2, 3, 4 follow waits of 20, 40, 80 ms.
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Fatalf("four failing attempts within %s: the backoff does not hold", el)
	}
}

func TestTakeDropsDeadItems(t *testing.T) {
	m := newMaker(t)
	p := New(2, m.lifecycle(), WithRefillDelay(time.Hour))
	defer p.Close()
	eventually(t, "a full pool", func() bool { return p.Len() == 2 })
	first := m.all()[0]
	first.dead.Store(true)
	th, pooled, err := p.Take(context.Background())
	if err != nil || !pooled || th == first || th.dead.Load() {
		t.Fatalf("Take = thing %v, pooled %v, err %v; want the live one", th, pooled, err)
	}
	eventually(t, "the dead thing destroyed", func() bool { return first.destroyed.Load() == 1 })
	if _, pooled, _ := p.Take(context.Background()); pooled {
		t.Fatal("Take found an item in an emptied pool")
	}
}

func TestCheckEveryReplacesDeadIdleItems(t *testing.T) {
	m := newMaker(t)
	p := New(1, m.lifecycle(), WithCheckEvery(5*time.Millisecond), WithRefillDelay(time.Hour))
	defer p.Close()
	eventually(t, "a full pool", func() bool { return p.Len() == 1 })
	first := m.all()[0]
	first.dead.Store(true)
	eventually(t, "the dead item replaced without a take", func() bool {
		return first.destroyed.Load() == 1 && p.Len() == 1 && len(m.all()) == 2
	})
}

func TestRekeyFlushesStaleItems(t *testing.T) {
	m := newMaker(t)
	m.key = "a"
	p := New(2, m.lifecycle(), WithRefillDelay(time.Millisecond))
	defer p.Close()
	eventually(t, "a full pool", func() bool { return p.Len() == 2 })
	p.Rekey(func(ctx context.Context) (*thing, error) { return m.createKey(ctx, "b") })
	if th, pooled, _ := p.Take(context.Background()); pooled && th.key != "b" {
		t.Fatalf("Take after Rekey handed out a %q thing", th.key)
	}
	eventually(t, "a pool of new things", func() bool { return p.Len() == 2 })
	eventually(t, "the stale things destroyed", func() bool {
		for _, th := range m.all() {
			if th.key == "a" && th.destroyed.Load() == 0 {
				return false
			}
		}
		return true
	})
	th, pooled, err := p.Get(context.Background())
	if err != nil || !pooled || th.key != "b" {
		t.Fatalf("Get = %+v, %v, %v; want a pooled b thing", th, pooled, err)
	}
}

// TestRekeyDropsItemInFlight: an item that was being made the old way
// when Rekey came is destroyed, never pooled.
func TestRekeyDropsItemInFlight(t *testing.T) {
	m := newMaker(t)
	m.key = "a"
	m.gate = make(chan struct{})
	p := New(1, m.lifecycle(), WithRefillDelay(time.Millisecond))
	defer p.Close()
	eventually(t, "the filler making a thing", func() bool { return m.creates.Load() == 1 })
	p.Rekey(func(ctx context.Context) (*thing, error) { return m.createKey(ctx, "b") })
	close(m.gate)
	eventually(t, "a b thing pooled", func() bool { return p.Len() == 1 })
	for _, th := range m.all() {
		if th.key == "a" && th.destroyed.Load() != 1 {
			t.Fatalf("the a thing made during Rekey was not destroyed")
		}
	}
	if th, _, _ := p.Take(context.Background()); th == nil || th.key != "b" {
		t.Fatalf("Take = %+v, want the b thing", th)
	}
}

// TestCloseWaitsForFiller: Close returns only after the item being made
// is done and destroyed, and destroys the idle ones.
func TestCloseWaitsForFiller(t *testing.T) {
	m := newMaker(t)
	cancelled := make(chan struct{})
	var returned atomic.Bool
	lc := m.lifecycle()
	lc.Create = func(ctx context.Context) (*thing, error) {
		if m.creates.Load() < 2 {
			return m.create(ctx)
		}
		m.creates.Add(1)
		<-ctx.Done()
		close(cancelled)
		// A make that cannot be interrupted at once: it winds down for a
		// while and still returns an item.
		time.Sleep(20 * time.Millisecond)
		th := &thing{id: -1}
		m.mu.Lock()
		m.made = append(m.made, th)
		m.mu.Unlock()
		returned.Store(true)
		return th, nil
	}
	p := New(3, lc, WithRefillDelay(time.Millisecond))
	eventually(t, "two idle and one in the making", func() bool { return p.Len() == 2 && m.creates.Load() == 3 })
	p.Close()
	select {
	case <-cancelled:
	default:
		t.Fatal("Close did not cancel the filler's Create")
	}
	if !returned.Load() {
		t.Fatal("Close returned before the filler's Create did")
	}
	for _, th := range m.all() {
		if th.destroyed.Load() != 1 {
			t.Errorf("thing %d not destroyed by Close", th.id)
		}
	}
	if p.Len() != 0 {
		t.Fatalf("%d idle after Close", p.Len())
	}
	p.Close() // a second Close is harmless
}

// TestConcurrentGetAndClose: many callers take while the pool refills
// and closes; every thing made is handed out or destroyed, exactly once.
func TestConcurrentGetAndClose(t *testing.T) {
	m := newMaker(t)
	p := New(4, m.lifecycle(), WithRefillDelay(0), WithCheckEvery(time.Millisecond))
	var (
		mu     sync.Mutex
		handed = map[*thing]bool{}
		wg     sync.WaitGroup
	)
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				th, _, err := p.Get(context.Background())
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				if (i+j)%7 == 0 { // some die while idle
					p.mu.Lock()
					if len(p.idle) > 0 {
						p.idle[len(p.idle)-1].item.dead.Store(true)
					}
					p.mu.Unlock()
				}
				mu.Lock()
				if handed[th] {
					t.Errorf("thing %d handed out twice", th.id)
				}
				handed[th] = true
				mu.Unlock()
			}
		})
	}
	wg.Add(1)
	go func() { defer wg.Done(); p.Close() }()
	wg.Wait()
	p.Close()
	for _, th := range m.all() {
		d := th.destroyed.Load()
		switch {
		case handed[th] && d != 0:
			t.Errorf("thing %d handed out and destroyed", th.id)
		case !handed[th] && d != 1:
			t.Errorf("thing %d neither handed out nor destroyed (destroyed %d times)", th.id, d)
		}
	}
	if len(handed) != 400 {
		t.Fatalf("%d things handed out, want 400", len(handed))
	}
}

// TestWaitForFill: with WithWaitForFill a Take on an empty pool waits for
// the item being made; its Warm sees the wait through Awaited.
func TestWaitForFill(t *testing.T) {
	m := newMaker(t)
	m.gate = make(chan struct{})
	var hurried atomic.Bool
	lc := m.lifecycle()
	lc.Warm = func(ctx context.Context, _ *thing) error {
		select {
		case <-Awaited(ctx):
			hurried.Store(true)
		default:
		}
		return nil
	}
	p := New(1, lc, WithWaitForFill(), WithRefillDelay(time.Hour))
	defer p.Close()
	eventually(t, "the filler making a thing", func() bool { return m.creates.Load() == 1 })
	got := make(chan *thing)
	go func() {
		th, pooled, err := p.Take(context.Background())
		if err != nil || !pooled {
			t.Errorf("Take = %v, %v; want the thing in flight", pooled, err)
		}
		got <- th
	}()
	eventually(t, "the Take waiting", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.flight != nil && p.flight.claimed
	})
	close(m.gate)
	if th := recv(t, "Take", got); th == nil || th.id != 1 {
		t.Fatalf("Take got %+v, want the thing in flight", th)
	}
	if !hurried.Load() {
		t.Fatal("Warm did not see that a Take waited")
	}
	if p.Len() != 0 {
		t.Fatal("the handed-over thing also went to the pool")
	}
}

// TestWaitForFillAbandoned: a Take that gives up waiting returns its
// context's error, and the item goes to the pool when made.
func TestWaitForFillAbandoned(t *testing.T) {
	m := newMaker(t)
	m.gate = make(chan struct{})
	p := New(1, m.lifecycle(), WithWaitForFill(), WithRefillDelay(time.Hour))
	defer p.Close()
	eventually(t, "the filler making a thing", func() bool { return m.creates.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, _, err := p.Take(ctx); errc <- err }()
	eventually(t, "the Take waiting", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.flight != nil && p.flight.claimed
	})
	cancel()
	if err := recv(t, "Take", errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Take: %v, want context.Canceled", err)
	}
	close(m.gate)
	eventually(t, "the thing pooled", func() bool { return p.Len() == 1 })
}

// TestWaitForFillFailure: when the item waited for cannot be made, Take
// reports none (Get then makes its own).
func TestWaitForFillFailure(t *testing.T) {
	m := newMaker(t)
	m.gate = make(chan struct{})
	m.fail.Store(true)
	p := New(1, m.lifecycle(), WithWaitForFill(), WithBackoff(time.Hour, time.Hour))
	defer p.Close()
	eventually(t, "the filler making a thing", func() bool { return m.creates.Load() == 1 })
	res := make(chan bool)
	go func() { _, pooled, _ := p.Take(context.Background()); res <- pooled }()
	eventually(t, "the Take waiting", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.flight != nil && p.flight.claimed
	})
	close(m.gate)
	if recv(t, "Take", res) {
		t.Fatal("Take reported a pooled item from a failed make")
	}
}

func TestNewRequiresCreateAndDestroy(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New without Destroy did not panic")
		}
	}()
	New(1, Lifecycle[int]{Create: func(context.Context) (int, error) { return 0, nil }})
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
