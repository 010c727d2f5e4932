package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"

	"github.com/mcpruntime/mcpruntime/examples/plugins/hostpython/fixtures/broken"
)

// brokenCase is a broken variant of this plugin and what the conformance
// suite must say about it.
type brokenCase struct {
	name  string
	wrap  broken.Wrap
	check string
	// want is in the failing check's message: it names the broken point.
	want string
}

var brokenCases = []brokenCase{
	{"dropenv", broken.DropEnv, "env", "SessionSpec.Env variable MCPRT_CHECK_ENV not visible to code"},
	{"dropmounts", broken.DropMounts, "mounts", "SessionSpec.Mounts: module mcprt_check_mount.probe mounted at /mcpruntime/lib/mcprt_check_mount (read-only) not importable"},
	{"writablemounts", broken.WritableMounts, "mounts", "SessionSpec.Mounts: the read-only mount /mcpruntime/lib/mcprt_check_mount is writable"},
	{"ignorepids", broken.IgnorePids, "pids_limit", `declared "pids" but a session with Pids=32 started 256 processes`},
	{"ignorecpu", broken.IgnoreCPU, "cpu_limit", `declared "cpu" but a busy loop under CPUMillis=200`},
	{"ignorememory", broken.IgnoreMemory, "memory_limit", `declared "memory" but`},
	{"ignorecancel", broken.IgnoreCancel, "cancel", "cancellation did not stop the running code"},
	{"acceptanyconfig", broken.AcceptAnyConfig, "config_errors", `config attribute "` + broken.ExtraAttribute + `" (number): Configure accepted the wrongly typed value`},
	{"destroyonreconfigure", broken.DestroyOnReconfigure, "configure_again", "a second Configure (accepted) broke session"},
}

// failed asserts that check failed in results with a message holding want.
func failed(t *testing.T, results []sandboxtest.Result, check, want string) {
	t.Helper()
	for _, r := range results {
		if r.Name != check {
			continue
		}
		if r.Passed || r.Skipped {
			t.Fatalf("check %s passed (skipped=%v %s) against a plugin broken for it", check, r.Skipped, r.Error)
		}
		if !strings.Contains(r.Error, want) {
			t.Fatalf("check %s failed with %q, want a message containing %q", check, r.Error, want)
		}
		return
	}
	t.Fatalf("no result for check %s in %+v", check, results)
}

// TestBrokenVariantsFail runs the checks each broken variant targets,
// in process: every one must fail, naming the broken point.
func TestBrokenVariantsFail(t *testing.T) {
	for _, c := range brokenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			results, err := sandboxtest.ReportBackend(context.Background(), c.wrap(&backend{}), nil, sandboxtest.WithChecks(c.check))
			if err != nil {
				t.Fatal(err)
			}
			failed(t, results, c.check, c.want)
		})
	}
}

// TestConfiguredOnce: a plugin that refuses every Configure after its
// first, as the contract allows, passes the whole suite, so the suite
// configures once.
func TestConfiguredOnce(t *testing.T) {
	sandboxtest.RunBackend(t, broken.ConfigureOnce(&backend{}))
}

// TestBrokenBinariesFail builds the fixture binaries (the real plugin
// wrapped across a process boundary) and runs the whole suite against
// each, as `mcpruntime plugins check` does.
func TestBrokenBinariesFail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and checks three plugin binaries")
	}
	dir := t.TempDir()
	build := func(out, pkg string) {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	build(broken.Inner, ".")
	binaries := map[string]bool{"dropenv": true, "dropmounts": true, "ignorepids": true}
	for _, c := range brokenCases {
		if !binaries[c.name] {
			continue
		}
		build(sdk.BinaryPrefix+"broken-"+c.name, "./fixtures/"+c.name)
	}
	for _, c := range brokenCases {
		if !binaries[c.name] {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			results, err := sandboxtest.Report(context.Background(), filepath.Join(dir, sdk.BinaryPrefix+"broken-"+c.name), nil)
			if err != nil {
				t.Fatal(err)
			}
			failed(t, results, c.check, c.want)
			// Only what is broken fails.
			for _, r := range results {
				if !r.Passed && r.Name != c.check {
					t.Errorf("check %s also failed: %s", r.Name, r.Error)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, broken.Inner)); err != nil {
		t.Fatal(err)
	}
}
