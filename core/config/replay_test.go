package config

import (
	"strings"
	"testing"
	"time"
)

func TestReplaySnapshots(t *testing.T) {
	c, err := parse(t, "runtime {\n  backend = \"wasm\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Replay.Snapshots != SnapshotsOnDemand || c.Replay.KeepSnapshots != DefaultKeepSnapshots {
		t.Fatalf("defaults: %+v", c.Replay)
	}
	c, err = parse(t, "replay {\n  snapshots      = \"every_step\"\n  keep_snapshots = 5\n}\n")
	if err != nil || c.Replay.Snapshots != SnapshotsEveryStep || c.Replay.KeepSnapshots != 5 {
		t.Fatalf("every_step: %+v %v", c.Replay, err)
	}
	cases := map[string]struct{ src, want string }{
		"unknown mode":  {"replay {\n  snapshots = \"always\"\n}\n", `Got "always"; use one of "every_step", "on_demand", "off".`},
		"mode position": {"replay {\n  snapshots = \"always\"\n}\n", "runtime.hcl:2:15: Invalid replay.snapshots"},
		"not a string":  {"replay {\n  snapshots = true\n}\n", "runtime.hcl:2:15: Invalid replay.snapshots"},
		"keep zero":     {"replay {\n  keep_snapshots = 0\n}\n", "runtime.hcl:1:1: Invalid keep_snapshots"},
		"unknown attr":  {"replay {\n  snapshot = \"off\"\n}\n", "runtime.hcl:2:3: Unsupported argument"},
	}
	for name, tc := range cases {
		_, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
}

func TestReplayRetention(t *testing.T) {
	c, err := parse(t, "runtime {\n  backend = \"wasm\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Replay.Keep != DefaultReplayKeep || c.Replay.MaxSize != DefaultReplayMaxSize {
		t.Fatalf("defaults: %+v", c.Replay)
	}
	c, err = parse(t, "replay {\n  keep     = \"7d\"\n  max_size = \"512MiB\"\n}\n")
	if err != nil || c.Replay.Keep != 7*24*time.Hour || c.Replay.MaxSize != 512<<20 {
		t.Fatalf("7d/512MiB: %+v %v", c.Replay, err)
	}
	c, err = parse(t, "replay {\n  keep     = \"0\"\n  max_size = \"0\"\n}\n")
	if err != nil || c.Replay.Keep != 0 || c.Replay.MaxSize != 0 {
		t.Fatalf("off: %+v %v", c.Replay, err)
	}
	cases := map[string]struct{ src, want string }{
		"bad age":      {"replay {\n  keep = \"30 days\"\n}\n", "runtime.hcl:2:10: Invalid replay.keep"},
		"negative age": {"replay {\n  keep = \"-1h\"\n}\n", "runtime.hcl:2:10: Invalid replay.keep"},
		"age type":     {"replay {\n  keep = true\n}\n", "runtime.hcl:2:10: Invalid duration"},
		"bad size":     {"replay {\n  max_size = \"lots\"\n}\n", "runtime.hcl:2:14: Invalid size"},
		"both at once": {"replay {\n  keep = \"x\"\n  max_size = \"y\"\n}\n", "runtime.hcl:3:14: Invalid size"},
	}
	for name, tc := range cases {
		_, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
}

func TestParseAge(t *testing.T) {
	good := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5d": 36 * time.Hour,
		"1d12h": 36 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "0": 0, " 1d ": 24 * time.Hour,
	}
	for in, want := range good {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "30", "30days", "12h3d", "-2d", "x"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q): no error", in)
		}
	}
}
