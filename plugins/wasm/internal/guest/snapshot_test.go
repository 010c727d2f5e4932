package guest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/testenv"
)

// engines are the engines this build has.
func engines() []string {
	if WasmtimeAvailable {
		return []string{EngineWazero, EngineWasmtime}
	}
	return []string{EngineWazero}
}

func newEngine(t testing.TB, name string) Engine {
	t.Helper()
	eng, err := NewEngine(context.Background(), EngineOptions{Name: name, CacheDir: filepath.Join(testenv.StateDir(t), "engine-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng
}

// TestSnapshotSessionsShareNoState builds an image whose pre-init run
// imported random and made a global, then starts two instances of it: each
// sees the global as the pre-init run left it, its own changes stay its
// own, the random module draws different numbers after a reseed, and
// files live in each instance's own workspace.
func TestSnapshotSessionsShareNoState(t *testing.T) {
	dir := testenv.PythonDir(t)
	for _, name := range engines() {
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, name)
			empty := t.TempDir()
			init := "import random, json\ncounter = [41]\n"
			resume := "import os, random\nrandom.seed()\ncounter[0] += 1\n" +
				"open('/workspace/f', 'a').write('x')\n" +
				"print(counter[0], random.random(), len(open('/workspace/f').read()), sorted(os.listdir('/workspace')), flush=True)\n"
			run := RunOptions{
				Env:       []string{"PYTHONHOME=" + Prefix, "MCPRUNTIME_PREINIT=" + init, "MCPRUNTIME_RESUME=" + resume},
				StdlibDir: filepath.Join(dir, "lib"),
				Mounts:    []Mount{{Dir: empty, ReadOnly: true, Guest: "/workspace"}},
			}
			start := time.Now()
			img, key, err := EnsureSnapshot(context.Background(), eng, SnapshotOptions{
				Wasm: filepath.Join(dir, "python.wasm"), Dir: t.TempDir(), Key: "test " + init + resume, Run: run,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("image built in %v", time.Since(start))
			start = time.Now()
			mod, err := eng.Load(context.Background(), img, key)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("image loaded in %v", time.Since(start))
			var outs []string
			for i := 0; i < 2; i++ {
				ws := t.TempDir()
				if err := os.WriteFile(filepath.Join(ws, "own"+string(rune('a'+i))), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				var out, errb bytes.Buffer
				start := time.Now()
				code, err := mod.Run(context.Background(), RunOptions{
					Entry: ResumeEntry, Env: run.Env, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
					StdlibDir: run.StdlibDir, Mounts: []Mount{{Dir: ws, FS: NewBindableFS(ws, false), Guest: "/workspace"}},
				})
				if err != nil || code != 0 {
					t.Fatalf("resume: %d %v %s", code, err, errb.String())
				}
				t.Logf("resume %d: %v: %s", i, time.Since(start), out.String())
				outs = append(outs, out.String())
			}
			for i, o := range outs {
				f := strings.Fields(o)
				if len(f) < 4 || f[0] != "42" || f[2] != "1" || !strings.Contains(o, "'own"+string(rune('a'+i))+"'") {
					t.Errorf("instance %d: %q: want the global at 41+1, one byte in its own file, its own workspace", i, o)
				}
			}
			if a, b := strings.Fields(outs[0]), strings.Fields(outs[1]); len(a) > 1 && len(b) > 1 && a[1] == b[1] {
				t.Errorf("both instances drew %s from random", a[1])
			}
		})
	}
}
