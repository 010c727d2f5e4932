package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shortFile writes only the first half of a record, as a disk filling up
// mid-write does, then fails with ENOSPC; or fails its fsync.
type shortFile struct {
	*os.File
	failSync bool
}

func (f shortFile) Write(b []byte) (int, error) {
	if f.failSync {
		return f.File.Write(b)
	}
	n, err := f.File.Write(b[:len(b)/2])
	if err != nil {
		return n, err
	}
	return n, syscall.ENOSPC
}

func (f shortFile) Sync() error {
	if f.failSync {
		return syscall.EIO
	}
	return f.File.Sync()
}

func TestAppendIsWholeOrNothing(t *testing.T) {
	for _, failSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("failSync=%v", failSync), func(t *testing.T) {
			ws := t.TempDir()
			l, err := OpenLog(ws, "s1")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(&Entry{Step: 1, Code: "x = 1\n", OK: true}); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(l.Path())
			if err != nil {
				t.Fatal(err)
			}
			l.wrap = func(f *os.File) logFile { return shortFile{File: f, failSync: failSync} }
			err = l.Append(&Entry{Step: 2, Code: strings.Repeat("y", 10000), OK: true})
			want := syscall.ENOSPC
			if failSync {
				want = syscall.EIO
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), "record not written") {
				t.Fatalf("append through a failing file: %v, want %v", err, want)
			}
			after, _ := os.ReadFile(l.Path())
			if !bytes.Equal(before, after) {
				t.Fatalf("the failed append left %d bytes behind:\n%q", len(after)-len(before), after[len(before):])
			}
			l.wrap = nil
			if err := l.Append(&Entry{Step: 2, Code: "x = 2\n", OK: true}); err != nil {
				t.Fatal(err)
			}
			entries, problems, err := l.Read()
			if err != nil || len(problems) != 0 || len(entries) != 2 || entries[1].Code != "x = 2\n" {
				t.Fatalf("read after: %v %v %+v", err, problems, entries)
			}
		})
	}
}

// A torn last line (an older version, a power cut) is reported by every
// reader, never fatal, and the next append starts a new line.
func TestTornLastLineIsReported(t *testing.T) {
	ws := t.TempDir()
	l, _ := OpenLog(ws, "s1")
	if err := l.Append(&Entry{Step: 1, OK: true, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(l.Path(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step":2,"code":"pri`)
	f.Close()
	entries, problems, err := Show(ws, "s1", -1)
	if err != nil || len(entries) != 1 || len(problems) != 1 || !strings.Contains(problems[0].Reason, "truncated last line") {
		t.Fatalf("show: %v %+v %+v", err, entries, problems)
	}
	list, err := List(ws)
	if err != nil || len(list) != 1 || len(list[0].Problems) != 1 {
		t.Fatalf("list: %v %+v", err, list)
	}
	rep, err := Prune(t.Context(), ws, PruneOptions{OlderThan: time.Hour})
	if err != nil || len(rep.Sessions) != 0 {
		t.Fatalf("prune of a torn log: %v %+v", err, rep)
	}
}

// BenchmarkAppendDurability is the median time of one Append of a typical
// record (about 1 KiB), fsynced (what the recorder does) and, for
// comparison, without fsync.
func BenchmarkAppendDurability(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			l, _ := OpenLog(b.TempDir(), "bench")
			if !fsync {
				l.wrap = func(f *os.File) logFile { return noSync{f} }
			}
			e := &Entry{Code: strings.Repeat("x = 1\n", 100), Stdout: strings.Repeat("out\n", 100), OK: true, Backend: "wasm"}
			times := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				e.Step = i + 1
				t0 := time.Now()
				if err := l.Append(e); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "median-µs")
			line, _ := json.Marshal(e)
			b.ReportMetric(float64(len(line)+1), "bytes/record")
		})
	}
}

type noSync struct{ *os.File }

func (noSync) Sync() error { return nil }
