package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
)

func TestResolveRuntime(t *testing.T) {
	rt, _, err := resolveRuntime("runc")
	if err != nil || rt.shim != runcShim || rt.binary != "" {
		t.Fatalf("runc: %+v %v", rt, err)
	}
	if o, ok := rt.options("/run/x").(*options.Options); !ok || o.Root != "/run/x/runc" || o.BinaryName != "" {
		t.Fatalf("runc options: %+v", rt.options("/run/x"))
	}
	rt, _, err = resolveRuntime("io.containerd.kata.v2")
	if err != nil || rt.shim != "io.containerd.kata.v2" || rt.options("/run/x") != nil {
		t.Fatalf("shim name: %+v %v", rt, err)
	}

	// Without crun on PATH: "crun" is an error that says how to install
	// it, "auto" falls back to runc and says why.
	t.Setenv("PATH", t.TempDir())
	if _, _, err := resolveRuntime("crun"); err == nil || !strings.Contains(err.Error(), "apt-get install crun") {
		t.Fatalf("crun missing: %v", err)
	}
	rt, why, err := resolveRuntime("auto")
	if err != nil || rt.name != "runc" || !strings.Contains(why, "not installed") {
		t.Fatalf("auto without crun: %+v %q %v", rt, why, err)
	}

	// With a crun on PATH, "auto" picks it where the cgroups allow.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "crun"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	rt, why, err = resolveRuntime("auto")
	if err != nil {
		t.Fatal(err)
	}
	if len(daemon.Cgroup2Controllers()) == 0 {
		if rt.name != "crun" || rt.binary != filepath.Join(dir, "crun") {
			t.Fatalf("auto with crun usable: %+v (%s)", rt, why)
		}
	} else if rt.name != "runc" || !strings.Contains(why, "cgroup2") {
		t.Fatalf("auto with crun unusable here: %+v (%s)", rt, why)
	}
}
