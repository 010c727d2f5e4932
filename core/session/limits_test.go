package session

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func TestEffectiveClampsToConfigured(t *testing.T) {
	cfg := sdk.Limits{Timeout: 30 * time.Second, MemoryBytes: 512 << 20, Pids: 64, CPUMillis: 1500}
	for _, c := range []struct {
		name      string
		limits    sdk.Limits
		requested time.Duration
		want      time.Duration
		clamped   bool
	}{
		{"default", cfg, 0, 30 * time.Second, false},
		{"shorter", cfg, 5 * time.Second, 5 * time.Second, false},
		{"equal", cfg, 30 * time.Second, 30 * time.Second, false},
		{"above", cfg, 40 * time.Second, 30 * time.Second, true},
		{"far above", cfg, 1000 * time.Hour, 30 * time.Second, true},
		{"unlimited backend", sdk.Limits{}, 40 * time.Second, 40 * time.Second, false},
	} {
		got, applied, err := Effective(c.limits, c.requested)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want || applied.TimeoutMs != c.want.Milliseconds() || applied.Clamped != c.clamped ||
			applied.RequestedTimeoutMs != c.requested.Milliseconds() {
			t.Errorf("%s: Effective(%s) = %s, %+v; want %s clamped=%v", c.name, c.requested, got, applied, c.want, c.clamped)
		}
	}
	_, applied, _ := Effective(cfg, 0)
	if applied.MemoryBytes != 512<<20 || applied.Pids != 64 || applied.CPUs != 1.5 {
		t.Errorf("applied limits do not carry the configured ones: %+v", applied)
	}
	if _, _, err := Effective(cfg, -time.Second); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("a negative timeout: err = %v, want ErrInvalidLimit", err)
	}
}

func TestMillisSaturates(t *testing.T) {
	if got := Millis(1500); got != 1500*time.Millisecond {
		t.Errorf("Millis(1500) = %s", got)
	}
	huge := Millis(math.MaxInt64)
	if huge <= 0 {
		t.Fatalf("Millis(MaxInt64) wrapped to %s", huge)
	}
	got, applied, err := Effective(sdk.Limits{Timeout: 30 * time.Second}, huge)
	if err != nil || got != 30*time.Second || !applied.Clamped {
		t.Errorf("a huge request: %s %+v %v", got, applied, err)
	}
}
