package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/plugins/nomad/internal/testcluster"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
	"github.com/mcpruntime/mcpruntime/sdk/sandboxtest"
)

// cluster is the package's private 3-agent cluster (TestMain), nil when
// there is no Nomad binary outside CI.
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	nomad, ok := testcluster.Binary()
	if !ok {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "nomad: no Nomad binary (run `make -C plugins/nomad deps`); under CI=true this fails")
			return 1
		}
		fmt.Fprintln(os.Stderr, "nomad: no Nomad binary (run `make -C plugins/nomad deps`): cluster tests skip")
		code := m.Run()
		if builtBin != "" {
			os.RemoveAll(filepath.Dir(builtBin))
		}
		return code
	}
	var c *testcluster.Cluster
	var err error
	if dir := os.Getenv("NOMAD_TEST_CLUSTER_DIR"); dir != "" {
		c, err = testcluster.Attach(dir, nomad)
	} else {
		var dir string
		if dir, err = os.MkdirTemp("", "mcpruntime-nomad-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err = testcluster.Start(dir, nomad)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nomad: start the test cluster:", err)
		return 1
	}
	cluster = c
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "nomad: stop the test cluster:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func requireCluster(t testing.TB) *testcluster.Cluster {
	t.Helper()
	if cluster == nil {
		t.Skip("no Nomad cluster (run `make -C plugins/nomad deps`)")
	}
	return cluster
}

// configJSON is the plugin's config block for the test cluster.
func configJSON(extra map[string]any) string {
	m := map[string]any{"address": cluster.Addr, "placement_timeout": "60s"}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func nomadClient(t testing.TB) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: cluster.Addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func buildPlugin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NOMAD_PLUGIN_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpruntime-nomad-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "mcpruntime-plugin-nomad")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build plugin: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// harness is one launched plugin binary, configured, with sessions on a
// temporary workspace.
type harness struct {
	*sandboxtest.Harness
	p     *host.Plugin
	ws    string
	state string
}

func launch(t testing.TB, pool int, state string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, buildPlugin(t), host.WithStartTimeout(time.Minute))
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	h := &harness{p: p, ws: t.TempDir(), state: state}
	h.Harness = &sandboxtest.Harness{B: p, Workspace: h.ws, Prefix: "nomad"}
	if h.state == "" {
		h.state = filepath.Join(h.ws, ".state")
	}
	t.Cleanup(p.Kill)
	if err := p.Configure(ctx, &sdk.Config{JSON: []byte(configJSON(nil)), PoolSize: pool, StateDir: h.state}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h
}

// sessionNodes maps each running session job of the cluster to the node
// its allocation runs on, by session id (meta or record).
func sessionNodes(t testing.TB, c *api.Client) map[string]string {
	t.Helper()
	jobs, _, err := c.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, &api.QueryOptions{Prefix: "mcpruntime-"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, j := range jobs {
		sid := j.Meta["mcpruntime_session"]
		if sid == "" {
			v, _, err := c.Variables().Read("mcpruntime/sessions/"+j.ID, nil)
			if err == nil && v != nil {
				sid = v.Items["session"]
			}
		}
		if sid == "" {
			continue
		}
		allocs, _, err := c.Jobs().Allocations(j.ID, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range allocs {
			// Pending too: the plugin's kernel runs before the client's
			// batched status update reaches the servers.
			if a.ClientStatus == "running" || a.ClientStatus == "pending" {
				out[sid] = a.NodeName
			}
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
