package pool

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultRefillDelay is how long a pool waits after an item was taken
// before it makes the replacement. Making an item (a worker process, a
// container, a VM) is tens to hundreds of milliseconds of CPU, and the
// caller that just took one is at that moment setting it up and running
// its first request: both plugins that measured this ran that set-up and
// first request faster with the replacement started 50 ms later than at
// once (wasm: create / first exec 2.1-2.9 / 2.2-2.3 ms at once, 1.8-2.0 /
// 1.6-1.9 ms after 50 ms; containers: create + first exec 3.8-4.1 ms at
// once, 2.3-3.4 ms after 50 ms). Longer only leaves the pool short for
// longer when sessions arrive in bursts.
const DefaultRefillDelay = 50 * time.Millisecond

// DefaultBackoffMin and DefaultBackoffMax bound the wait between failed
// attempts to make an item: a transient failure is retried within a
// tenth of a second, and a broken installation costs at most one attempt
// every half minute instead of a core spent on failing attempts.
const (
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// Option tunes a Pool. Options are not generic so that a call site need
// not spell out the item type.
type Option func(*settings)

type settings struct {
	refillDelay time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	checkEvery  time.Duration
	waitForFill bool
	logger      hclog.Logger
	// wait sleeps for d or until ctx ends, reporting whether the full
	// time passed. Tests replace it to record the backoff without
	// sleeping.
	wait func(ctx context.Context, d time.Duration) bool
}

func defaults() settings {
	return settings{
		refillDelay: DefaultRefillDelay,
		backoffMin:  DefaultBackoffMin,
		backoffMax:  DefaultBackoffMax,
		logger:      hclog.NewNullLogger(),
		wait:        sleep,
	}
}

// WithRefillDelay sets how long the pool waits after a take before it
// makes the replacement (default DefaultRefillDelay). Set it only from a
// measurement: see DefaultRefillDelay for what it trades.
func WithRefillDelay(d time.Duration) Option {
	return func(s *settings) { s.refillDelay = max(d, 0) }
}

// WithBackoff sets the first and the longest wait after a failed attempt
// to make an item. The wait doubles with every failure in a row, up to
// longest, and starts again from first after a success.
func WithBackoff(first, longest time.Duration) Option {
	return func(s *settings) {
		s.backoffMin = max(first, time.Millisecond)
		s.backoffMax = max(longest, s.backoffMin)
	}
}

// WithLogger sets where failures and dropped items are logged (default:
// nowhere). Name it for the pool, e.g. logger.Named("pool").
func WithLogger(l hclog.Logger) Option {
	return func(s *settings) {
		if l != nil {
			s.logger = l
		}
	}
}

// WithCheckEvery makes the pool run Alive on its idle items every d and
// replace those that fail, instead of only when they are taken: for items
// that hold much (a VM's memory) or that the pool reports as ready.
func WithCheckEvery(d time.Duration) Option {
	return func(s *settings) { s.checkEvery = max(d, 0) }
}

// WithWaitForFill makes Take, when no item is idle but one is being made,
// wait for that one instead of returning none: for items that take long
// to make, where the one started earlier is ready before a fresh one
// would be. Its maker can see that someone waits (Awaited) and cut
// optional warming short.
func WithWaitForFill() Option {
	return func(s *settings) { s.waitForFill = true }
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
