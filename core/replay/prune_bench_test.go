package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syntheticStore writes a store of sessions sessions with 3 steps each
// (a state pickle and sidecar per step) and objects objects of 1 KiB,
// each session's manifest naming objects/sessions of them; the first half
// of the sessions is 40 days old, the rest 2 days.
func syntheticStore(tb testing.TB, ws string, sessions, objects int) {
	tb.Helper()
	for _, d := range []string{"objects", "manifests", "state"} {
		if err := os.MkdirAll(filepath.Join(ws, Dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	old, young := time.Now().Add(-40*day), time.Now().Add(-2*day)
	hashes := make([]string, objects)
	for i := range hashes {
		content := []byte(fmt.Sprintf("object %d %s", i, strings.Repeat("x", 1000)))
		sum := sha256.Sum256(content)
		hashes[i] = hex.EncodeToString(sum[:])
		p := filepath.Join(ws, Dir, "objects", hashes[i])
		if err := os.WriteFile(p, content, 0o444); err != nil {
			tb.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	per := objects / sessions
	for s := 0; s < sessions; s++ {
		at := old
		if s >= sessions/2 {
			at = young
		}
		man := Manifest{Files: []FileEntry{}}
		for k := 0; k < per; k++ {
			man.Files = append(man.Files, FileEntry{Path: fmt.Sprintf("f%d", k), Type: "file", Mode: 0o644, Size: 1000, Hash: hashes[s*per+k]})
		}
		b, _ := json.Marshal(man)
		sum := sha256.Sum256(b)
		mid := hex.EncodeToString(sum[:])
		mp := filepath.Join(ws, Dir, "manifests", mid+".json")
		os.WriteFile(mp, b, 0o644)
		os.Chtimes(mp, at, at)
		id := fmt.Sprintf("s%04d", s)
		var log strings.Builder
		for step := 1; step <= 3; step++ {
			e := Entry{Step: step, Session: id, Code: "x = 1", OK: true, WorkspaceSnapshot: mid, State: StatePath(id, step), Time: at}
			line, _ := json.Marshal(e)
			log.Write(line)
			log.WriteByte('\n')
			for _, suf := range []string{"", ".json"} {
				p := filepath.Join(ws, e.State+suf)
				os.WriteFile(p, []byte("state"), 0o644)
				os.Chtimes(p, at, at)
			}
		}
		lp := LogPath(ws, id)
		os.WriteFile(lp, []byte(log.String()), 0o644)
		os.Chtimes(lp, at, at)
	}
}

// BenchmarkPruneLargeStore times a pass over 2,000 sessions (6,000 steps,
// 12,000 state files) and 10,000 objects that removes the older half.
func BenchmarkPruneLargeStore(b *testing.B) {
	for _, dry := range []bool{true, false} {
		b.Run(fmt.Sprintf("dry_run=%v", dry), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ws := b.TempDir()
				syntheticStore(b, ws, 2000, 10000)
				b.StartTimer()
				t0 := time.Now()
				rep, err := Prune(b.Context(), ws, PruneOptions{OlderThan: 30 * day, DryRun: dry})
				total += time.Since(t0)
				if err != nil || len(rep.Sessions) != 1000 || rep.Objects != 5000 || len(rep.Errors) != 0 {
					b.Fatalf("%v: %d sessions, %d objects, errors %v", err, len(rep.Sessions), rep.Objects, rep.Errors)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pass")
		})
	}
}
