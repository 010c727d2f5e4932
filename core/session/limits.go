package session

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// ErrInvalidLimit rejects a requested limit that cannot apply (negative).
var ErrInvalidLimit = errors.New("invalid limit")

// Effective computes the limits one execution runs under. It is the one
// place where a client's request (HTTP timeout_ms, the MCP tool's
// timeout_ms, the CLI's --timeout, the agent's step timeout) meets the
// operator's limits block: a request may shorten the configured timeout,
// never lengthen it, and 0 asks for the configured one. A backend without a
// configured timeout (0) takes what the client asks.
func Effective(configured sdk.Limits, requested time.Duration) (time.Duration, *sdk.AppliedLimits, error) {
	if requested < 0 {
		return 0, nil, fmt.Errorf("%w: a timeout of %s is negative", ErrInvalidLimit, requested)
	}
	timeout, clamped := configured.Timeout, false
	switch {
	case requested == 0:
	case configured.Timeout == 0 || requested <= configured.Timeout:
		timeout = requested
	default:
		clamped = true
	}
	return timeout, &sdk.AppliedLimits{
		TimeoutMs: timeout.Milliseconds(), MemoryBytes: configured.MemoryBytes, OutputBytes: configured.OutputBytes,
		CPUs: float64(configured.CPUMillis) / 1000, Pids: configured.Pids,
		RequestedTimeoutMs: requested.Milliseconds(), Clamped: clamped,
	}, nil
}

// Millis converts a client's millisecond count to a Duration, saturating
// instead of overflowing (a huge timeout_ms must clamp to the limit, not wrap
// around to a short or negative one).
func Millis(ms int64) time.Duration {
	const most = int64(math.MaxInt64 / int64(time.Millisecond))
	switch {
	case ms > most:
		return time.Duration(math.MaxInt64)
	case ms < -most:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(ms) * time.Millisecond
}
