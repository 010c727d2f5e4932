package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// realPluginDir is where `make build` puts the plugins (bin/plugins at
// the repository root), or MCPRUNTIME_TEST_PLUGIN_DIR.
func realPluginDir() string {
	if d := os.Getenv("MCPRUNTIME_TEST_PLUGIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(mustWd(), "..", "..", "..", "bin", "plugins")
}

// needBackend skips when backend cannot run here: its plugin was not
// built (make build) or what it needs is missing (make deps).
func needBackend(t *testing.T, backend string) string {
	t.Helper()
	dir := realPluginDir()
	if backend == "hostpython" {
		return filepath.Join(binDir, "plugins")
	}
	if _, err := os.Stat(filepath.Join(dir, "mcpruntime-plugin-"+backend)); err != nil {
		t.Skipf("%s plugin not built in %s (make build)", backend, dir)
	}
	switch backend {
	case "opensandbox":
		if os.Geteuid() != 0 {
			t.Skip("containers need root")
		}
		if _, err := os.Stat("/run/mcpruntime/containerd/containerd.sock"); err != nil {
			t.Skip("the private containerd is not running (make deps)")
		}
	case "microvm":
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			t.Skip("qemu-system-x86_64 not installed (make deps)")
		}
	}
	return dir
}

// forkReport is what `replay fork --json` prints.
type forkReport struct {
	Session          string
	StateSource      string `json:"state_source"`
	StateSnapshot    string `json:"state_snapshot"`
	SnapshotFallback string `json:"snapshot_fallback"`
	Restored         []string
	NotRestored      map[string]string `json:"not_restored"`
	Notes            []string
}

// TestReplayForkRestoresBackendState forks a session whose step 1 left a
// half-consumed generator, on every backend: where the backend snapshots
// the sandbox's whole state (microvm) the fork continues the generator;
// where it has no snapshots (wasm, hostpython) the fork restores the
// pickle and names the generator as not restored. opensandbox declares
// the capability, but its snapshot is the kernel's pickle too: the fork
// uses it and reports that the generator did not come back.
func TestReplayForkRestoresBackendState(t *testing.T) {
	cases := []struct {
		backend   string
		source    string // state_source expected
		continues bool   // next(x) in the fork prints 1
	}{
		{"microvm", "backend_snapshot", true},
		{"opensandbox", "backend_snapshot", false},
		{"wasm", "pickle", false},
		{"hostpython", "pickle", false},
	}
	for _, tc := range cases {
		t.Run(tc.backend, func(t *testing.T) {
			plugins := needBackend(t, tc.backend)
			dir := project(t, "")
			hcl := "runtime {\n  backend = \"" + tc.backend + "\"\n  plugin_dir = \"" + plugins + "\"\n  daemon_idle_timeout = \"2m\"\n}\n" +
				"replay {\n  snapshots = \"every_step\"\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644); err != nil {
				t.Fatal(err)
			}
			if r := cli(t, dir, "", "exec", "--session", "g", "-c", "x = (i for i in range(10)); y = 7; next(x)"); r.code != 0 || r.stdout != "0\n" {
				t.Fatalf("step 1: %+v", r)
			}
			if r := cli(t, dir, "", "exec", "--session", "g", "-c", "next(x)"); r.code != 0 || r.stdout != "1\n" {
				t.Fatalf("step 2: %+v", r)
			}
			r := cli(t, dir, "", "replay", "show", "g", "--step", "1", "--json")
			var step struct {
				StateSnapshot      string `json:"state_snapshot"`
				StateSnapshotError string `json:"state_snapshot_error"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &step); err != nil || step.StateSnapshotError != "" {
				t.Fatalf("show step 1: %v %+v", err, r)
			}
			if (step.StateSnapshot != "") != (tc.source == "backend_snapshot") {
				t.Fatalf("step 1's state_snapshot = %q on %s", step.StateSnapshot, tc.backend)
			}

			r = cli(t, dir, "", "replay", "fork", "g", "--step", "1", "--json")
			var rep forkReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
				t.Fatalf("fork: %v %+v", err, r)
			}
			if rep.StateSource != tc.source || !contains(rep.Restored, "y") {
				t.Fatalf("fork report: %+v", rep)
			}
			if tc.source == "backend_snapshot" && rep.StateSnapshot != step.StateSnapshot {
				t.Fatalf("fork restored snapshot %q, step 1 recorded %q", rep.StateSnapshot, step.StateSnapshot)
			}
			next := cli(t, dir, "", "exec", "--session", rep.Session, "-c", "next(x)")
			if tc.continues {
				if next.code != 0 || next.stdout != "1\n" || len(rep.NotRestored) != 0 {
					t.Fatalf("next(x) in the fork: %+v (report %+v)", next, rep)
				}
				return
			}
			// The generator did not come back, and the report says so.
			if next.code == 0 || !strings.Contains(next.stderr+next.stdout, "NameError") {
				t.Fatalf("next(x) in the fork: %+v", next)
			}
			if _, ok := rep.NotRestored["x"]; !ok || !strings.Contains(strings.Join(rep.Notes, "\n"), "x") {
				t.Fatalf("the report does not name x as not restored: %+v", rep)
			}
			if tc.source == "pickle" && !strings.Contains(rep.NotRestored["x"], "pickle") {
				t.Fatalf("x not restored for %q, want the pickle error", rep.NotRestored["x"])
			}
			// The CLI without --json says which path was used.
			r = cli(t, dir, "", "replay", "fork", "g", "--step", "1")
			if r.code != 0 || !strings.Contains(r.stderr, "state: restored from the ") || !strings.Contains(r.stderr, "x") {
				t.Fatalf("fork output: %+v", r)
			}
		})
	}
}

// TestReplaySnapshotOnDemand: with the default on_demand, `replay
// snapshot` snapshots a live session's latest step, and a fork of that
// step restores it; a step without one falls back to the pickle.
func TestReplaySnapshotOnDemand(t *testing.T) {
	plugins := needBackend(t, "opensandbox")
	dir := project(t, "")
	hcl := "runtime {\n  backend = \"opensandbox\"\n  plugin_dir = \"" + plugins + "\"\n  daemon_idle_timeout = \"2m\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, dir, "", "exec", "--session", "d", "-c", "a = 1"); r.code != 0 {
		t.Fatalf("step 1: %+v", r)
	}
	r := cli(t, dir, "", "replay", "snapshot", "d", "--json")
	var snap struct {
		Snapshot string
		Step     int
	}
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil || r.code != 0 || snap.Step != 1 || snap.Snapshot == "" {
		t.Fatalf("replay snapshot: %v %+v", err, r)
	}
	if r := cli(t, dir, "", "exec", "--session", "d", "-c", "a = 2"); r.code != 0 {
		t.Fatalf("step 2: %+v", r)
	}
	if r := cli(t, dir, "", "exec", "--session", "d", "-c", "a = 3"); r.code != 0 {
		t.Fatalf("step 3: %+v", r)
	}
	fork := func(step string) forkReport {
		r := cli(t, dir, "", "replay", "fork", "d", "--step", step, "--json")
		var rep forkReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("fork --step %s: %v %+v", step, err, r)
		}
		return rep
	}
	if rep := fork("1"); rep.StateSource != "backend_snapshot" || rep.StateSnapshot != snap.Snapshot {
		t.Fatalf("fork of the snapshotted step: %+v", rep)
	}
	if rep := fork("2"); rep.StateSource != "pickle" || !strings.Contains(rep.SnapshotFallback, "no backend snapshot of step 2") {
		t.Fatalf("fork of a step without a snapshot: %+v", rep)
	}
	// The live session's latest step is snapshotted just before its fork.
	if rep := fork("3"); rep.StateSource != "backend_snapshot" {
		t.Fatalf("fork of the live session's latest step: %+v", rep)
	}
	if r := cli(t, dir, "", "exec", "--session", "d", "-c", "print(a)"); r.stdout != "3\n" {
		t.Fatalf("the original after the forks: %+v", r)
	}
}
