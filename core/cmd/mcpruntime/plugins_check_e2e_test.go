package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginsCheckFailsBrokenPlugins: `plugins check` fails the hostpython
// plugin's broken variants (examples/plugins/hostpython/fixtures), each
// with a report line naming the check and the broken point.
func TestPluginsCheckFailsBrokenPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the conformance suite against three plugin binaries")
	}
	const hostpython = "../../../examples/plugins/hostpython"
	dir := t.TempDir()
	build := func(out, pkg string) {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	// The fixtures wrap the real plugin, found beside them.
	build("mcpruntime-plugin-hostpython", hostpython)
	cases := []struct{ fixture, check, want string }{
		{"dropenv", "env", "SessionSpec.Env variable MCPRT_CHECK_ENV not visible to code"},
		{"dropmounts", "mounts", "SessionSpec.Mounts: module mcprt_check_mount.probe mounted at /mcpruntime/lib/mcprt_check_mount (read-only) not importable"},
		{"ignorepids", "pids_limit", `declared "pids" but a session with Pids=32 started`},
	}
	for _, c := range cases {
		build("mcpruntime-plugin-broken-"+c.fixture, hostpython+"/fixtures/"+c.fixture)
	}
	project := t.TempDir()
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			t.Parallel()
			r := cli(t, project, "", "plugins", "check", filepath.Join(dir, "mcpruntime-plugin-broken-"+c.fixture))
			if r.code != 1 || !strings.Contains(r.stdout, "conformance: ") || !strings.Contains(r.stdout, " 1 failed") {
				t.Fatalf("plugins check of a plugin broken for %s: exit %d, want 1 with one failed check\n%s%s", c.check, r.code, r.stdout, r.stderr)
			}
			var line string
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, "FAIL  "+c.check+" ") {
					line = l
				}
			}
			if line == "" || !strings.Contains(r.stdout, c.want) {
				t.Fatalf("plugins check does not fail %s with %q:\n%s", c.check, c.want, r.stdout)
			}
		})
	}
}
