package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

var (
	pluginOnce sync.Once
	pluginBin  string
	sessionSeq atomic.Int64
)

// pluginPath builds the plugin once per test binary.
func pluginPath(t testing.TB) string {
	pluginOnce.Do(func() { pluginBin = buildPlugin(t) })
	if pluginBin == "" {
		t.Fatal("plugin build failed earlier")
	}
	return pluginBin
}

// launch starts the plugin as the core would and configures it.
func launch(t testing.TB, poolSize int) *host.Plugin {
	t.Helper()
	// The first Configure of a run compiles python.wasm and the
	// pre-initialized image (wasmtime: ~10 s idle, minutes on a loaded
	// shared machine); later ones load them from the cache.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	// MCPRUNTIME_WASM_STAGE=0 measures and tests the unprivileged path.
	p, err := host.Launch(ctx, pluginPath(t), host.WithPassEnv(backend.StageEnv))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(p.Kill)
	if err := p.Configure(ctx, &sdk.Config{JSON: json.RawMessage(testenv.ConfigJSON(t, nil)), PoolSize: poolSize, StateDir: testenv.StateDir(t)}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return p
}

// newSession creates a session on a fresh workspace unless spec names one.
func newSession(t testing.TB, p *host.Plugin, spec sdk.SessionSpec) string {
	t.Helper()
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("t-%d", sessionSeq.Add(1))
	}
	if spec.Workspace == "" {
		spec.Workspace = t.TempDir()
	}
	if spec.Limits.Timeout == 0 {
		spec.Limits.Timeout = time.Minute
	}
	if err := p.CreateSession(context.Background(), &spec); err != nil {
		t.Fatalf("create session: %v", err)
	}
	t.Cleanup(func() { _ = p.DestroySession(context.Background(), spec.ID) })
	return spec.ID
}

type output struct {
	res            *sdk.ExecResult
	stdout, stderr string
}

func execCode(t testing.TB, p *host.Plugin, id, code string) output {
	t.Helper()
	var out, errb strings.Builder
	res, err := p.Execute(context.Background(), &sdk.ExecRequest{SessionID: id, Code: code}, func(e sdk.Event) {
		switch e.Kind {
		case sdk.EventStdout:
			out.Write(e.Data)
		case sdk.EventStderr:
			errb.Write(e.Data)
		}
	})
	if err != nil {
		t.Fatalf("execute %.80q: %v", code, err)
	}
	return output{res, out.String(), errb.String()}
}

func expectOK(t testing.TB, p *host.Plugin, id, code, want string) {
	t.Helper()
	o := execCode(t, p, id, code)
	if !o.res.OK() || o.stdout != want {
		t.Fatalf("%.80q: ok=%v stdout=%q want %q; %s; stderr=%.300q", code, o.res.OK(), o.stdout, want, o.res.Message, o.stderr)
	}
}
