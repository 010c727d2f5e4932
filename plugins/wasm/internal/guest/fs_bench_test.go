package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fileLoop opens, reads and closes 2,000 small files of /workspace/d inside
// the guest, then creates and writes 2,000 others, and prints the guest's
// own timing of each loop in seconds.
const fileLoop = `import os, time
t = time.perf_counter()
for i in range(2000):
    with open('/workspace/d/f%d.txt' % i) as f:
        f.read()
r = time.perf_counter() - t
t = time.perf_counter()
for i in range(2000):
    with open('/workspace/w/f%d.txt' % i, 'w') as f:
        f.write('x')
print(r, time.perf_counter() - t)
`

// BenchmarkGuestFileIO measures the workspace mount's cost per file: the
// medians of the guest's timing of fileLoop (read_ms: open/read/close of
// 2,000 files; write_ms: create/write/close of 2,000).
func BenchmarkGuestFileIO(b *testing.B) {
	rt, lib := newRuntime(b, 256<<20, false)
	ws := b.TempDir()
	for _, d := range []string{"d", "w"} {
		if err := os.Mkdir(filepath.Join(ws, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 2000 {
		if err := os.WriteFile(filepath.Join(ws, "d", fmt.Sprintf("f%d.txt", i)), []byte("small file "+strconv.Itoa(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fs := NewBindableFS(ws, false)
	var reads, writes []time.Duration
	for range b.N {
		code, out, errs, err := runCode(b, rt, lib, fileLoop, Mount{FS: fs, Guest: "/workspace"})
		if err != nil || code != 0 {
			b.Fatalf("code=%d err=%v %s", code, err, errs)
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			b.Fatalf("output %q", out)
		}
		r, _ := strconv.ParseFloat(f[0], 64)
		w, _ := strconv.ParseFloat(f[1], 64)
		reads = append(reads, time.Duration(r*float64(time.Second)))
		writes = append(writes, time.Duration(w*float64(time.Second)))
	}
	slices.Sort(reads)
	slices.Sort(writes)
	b.ReportMetric(float64(reads[len(reads)/2])/1e6, "read_ms")
	b.ReportMetric(float64(writes[len(writes)/2])/1e6, "write_ms")
}
