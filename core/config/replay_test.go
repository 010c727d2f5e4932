package config

import (
	"strings"
	"testing"
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
