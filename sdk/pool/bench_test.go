package pool

import (
	"context"
	"testing"
	"time"
)

// BenchmarkGetWarm measures Get from a pool with an item ready, the path
// of every pooled session: pop, Alive, the delayed refill's timer. The
// pool holds b.N items before the timer starts and its filler does not
// run meanwhile (the refill delay outlasts the benchmark).
func BenchmarkGetWarm(b *testing.B) {
	type item struct{ n int }
	p := New(b.N, Lifecycle[*item]{
		Create:  func(context.Context) (*item, error) { return &item{}, nil },
		Alive:   func(*item) bool { return true },
		Destroy: func(*item) {},
	}, WithRefillDelay(time.Hour))
	defer p.Close()
	for p.Len() < b.N {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, pooled, err := p.Get(ctx); err != nil || !pooled {
			b.Fatalf("Get: pooled %v, %v", pooled, err)
		}
	}
}
