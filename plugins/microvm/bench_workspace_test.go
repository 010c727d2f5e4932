package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/backend"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
)

// benchWorkspaces are the workspaces the issue measured: empty, the repo's
// own workspace/ (copied), and 5,000 files of 100 B plus one of 200 MB
// (random data: no hole to skip).
func benchWorkspaces(b *testing.B) [][2]string {
	empty := b.TempDir()
	out := [][2]string{{"empty", empty}}
	if _, err := os.Stat("../../workspace"); err == nil {
		repo := filepath.Join(b.TempDir(), "ws")
		if o, err := exec.Command("cp", "-a", "../../workspace", repo).CombinedOutput(); err != nil {
			b.Fatalf("copy the repo's workspace: %v %s", err, o)
		}
		out = append(out, [2]string{"repo-workspace", repo})
	}
	// The repo's workspace/ of the day the issue measured it: 865
	// entries, 13 MB, mostly replay logs (synthetic: 860 files of 1-31 KiB
	// and five logs of 1.5 MiB).
	logs := b.TempDir()
	for i := range 860 {
		p := filepath.Join(logs, fmt.Sprintf("s%03d/step-%d.json", i%40, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("{}\n", (1+i%31)*1024/3)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(logs, fmt.Sprintf("replay-%d.jsonl", i)), []byte(strings.Repeat("{\"step\": 1}\n", 1536*1024/12)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	out = append(out, [2]string{"865-files-13MB", logs})
	many := b.TempDir()
	for i := range 5000 {
		p := filepath.Join(many, fmt.Sprintf("d%02d/f%04d.txt", i%50, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 100)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	big := make([]byte, 200<<20)
	if _, err := rand.Read(big); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(many, "big.bin"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	return append(out, [2]string{"5000x100B+200MB", many})
}

// BenchmarkMicroVMWorkspace measures, per workspace, a new session's first
// execution from the pool and an execution in a session whose workspace
// did not change (medians), with the ratio to the empty workspace: with
// workspace images (the default) and without (every file sent at attach).
func BenchmarkMicroVMWorkspace(b *testing.B) {
	needQEMU(b)
	bin := pluginBinary(b)
	workspaces := benchWorkspaces(b)
	for _, images := range []bool{false, true} {
		b.Run(fmt.Sprintf("workspace_image=%v", images), func(b *testing.B) {
			for b.Loop() {
				fmt.Print(benchWorkspaceRows(b, bin, workspaces, images))
			}
		})
	}
}

// benchSessions is how many sessions each workspace row opens: the
// first is reported alone, the median is of the others.
const benchSessions = 6

// benchWorkspaceRows measures every workspace on a backend of its own.
// With images, the first session waits for its workspace's first image
// (built at its attach); the next ones find one kept ready (waited for,
// like the pool).
func benchWorkspaceRows(b *testing.B, bin string, workspaces [][2]string, images bool) string {
	ctx := context.Background()
	var opts []backend.Option
	if lvl := os.Getenv("MCPRUNTIME_BENCH_LOG"); lvl != "" {
		// Where a session's attach spends its time (the debug log).
		opts = append(opts, backend.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(lvl), Output: os.Stderr})))
	}
	be := backend.New(opts...)
	js, _ := json.Marshal(map[string]any{"agent": filepath.Join(filepath.Dir(bin), cli.AgentName), "restore_standby": 0, "workspace_image": images})
	if err := be.Configure(ctx, &sdk.Config{JSON: js, PoolSize: 1, StateDir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	defer be.Close(ctx)
	waitPool := func() {
		for be.PoolReady() < 1 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
	}
	run := func(id, code string) {
		res, err := be.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: code}, func(sdk.Event) {})
		if err != nil || !res.OK() {
			b.Fatalf("exec %q: %v %+v", code, err, res)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nmicroVM workspace benchmark (accel=%s, workspace_image=%v, medians)\n", be.Accel(), images)
	var emptyFirst, emptyExec time.Duration
	for _, w := range workspaces {
		name, dir := w[0], w[1]
		spec := func(id string) *sdk.SessionSpec {
			return &sdk.SessionSpec{ID: id, Workspace: dir, Limits: sdk.Limits{Timeout: 5 * time.Minute}}
		}
		var firsts []time.Duration
		var fromImage bool
		var attach backend.SyncStats
		for i := range benchSessions {
			waitPool()
			for images && i > 0 && !be.WorkspaceImageReady(dir) {
				time.Sleep(20 * time.Millisecond)
			}
			id := fmt.Sprintf("%s-%d", name, i)
			start := time.Now()
			if err := be.CreateSession(ctx, spec(id)); err != nil {
				b.Fatal(err)
			}
			run(id, "x = 1")
			firsts = append(firsts, time.Since(start))
			var err error
			if fromImage, attach, err = be.WorkspaceAttach(id); err != nil {
				b.Fatal(err)
			}
			if i < benchSessions-1 {
				_ = be.DestroySession(ctx, id)
			}
		}
		id := fmt.Sprintf("%s-%d", name, benchSessions-1)
		// Measured once large files sent in the background are in.
		settled, err := be.WorkspaceSettled(id)
		if err != nil {
			b.Fatal(err)
		}
		<-settled
		waitPool()
		// And once the next session's image is built: a rebuild is a
		// second of a host core, which the steady state does not pay.
		for images && !be.WorkspaceImageReady(dir) {
			time.Sleep(20 * time.Millisecond)
		}
		var execs []time.Duration
		for range 15 {
			start := time.Now()
			run(id, "x += 1")
			execs = append(execs, time.Since(start))
		}
		push, pull, err := be.WorkspaceSync(id)
		if err != nil {
			b.Fatal(err)
		}
		_ = be.DestroySession(ctx, id)
		first, exec := median(firsts[1:]), median(execs)
		if name == "empty" {
			emptyFirst, emptyExec = first, exec
		}
		fmt.Fprintf(&sb, "  %-16s pool-first-exec %9.1f ms (%.2fx empty; first session %.1f ms)   exec-in-session %7.1f ms (%.2fx empty)   from image %v, attach push %+v; last sync: push %+v pull %+v\n",
			name, ms(first), ms(first)/ms(emptyFirst), ms(firsts[0]), ms(exec), ms(exec)/ms(emptyExec), fromImage, attach, push, pull)
		mode := "sent"
		if images {
			mode = "image"
		}
		b.ReportMetric(ms(first), name+"-"+mode+"-pool-first-exec-ms")
		b.ReportMetric(ms(exec), name+"-"+mode+"-exec-in-session-ms")
	}
	return sb.String()
}
