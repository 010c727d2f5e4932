//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkReplay reads every session's replay log whole: each line must be a
// record, and each acknowledged execution must have one.
func (h *harness) checkReplay(rep *Report, sessions []*session) {
	for _, s := range sessions {
		path := filepath.Join(h.dir, "workspace", ".replay", s.id+".jsonl")
		f, err := os.Open(path)
		if err != nil {
			rep.MissingRecs = append(rep.MissingRecs, fmt.Sprintf("%s: %v", s.id, err))
			continue
		}
		records := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 16<<20), 16<<20)
		for line := 1; sc.Scan(); line++ {
			var e struct {
				Step int    `json:"step"`
				Code string `json:"code"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				rep.BadLines = append(rep.BadLines, fmt.Sprintf("%s:%d: %v", path, line, err))
				continue
			}
			if e.Code == counterCode {
				records++
			}
		}
		f.Close()
		rep.Records += records
		s.mu.Lock()
		want := s.acked - s.replayErrors
		s.mu.Unlock()
		if records < want {
			rep.MissingRecs = append(rep.MissingRecs, fmt.Sprintf("%s: %d records for %d acknowledged executions", s.id, records, want))
		}
	}
}

// checkOrphans waits for what the run started to be gone: its processes,
// and the containers its opensandbox plugins created. Plugins remove what
// dead predecessors left when they start, so a one-shot execution on each
// backend is run while waiting.
func (h *harness) checkOrphans(t *testing.T, rep *Report, tr *tracker) {
	rep.Processes = len(tr.seen)
	owners := tr.pids("mcpruntime-plug")
	deadline := time.Now().Add(3 * time.Minute)
	var procs []proc
	var boxes []string
	for {
		procs, boxes = tr.alive(), h.containers(t, owners)
		if (len(procs) == 0 && len(boxes) == 0) || time.Now().After(deadline) {
			break
		}
		for _, b := range []string{"wasm", "opensandbox"} {
			if out, err := h.command("exec", "--backend", b, "-c", "pass").CombinedOutput(); err != nil {
				t.Logf("sweep run on %s: %v: %s", b, err, out)
			}
		}
		time.Sleep(2 * time.Second)
	}
	for _, p := range procs {
		rep.OrphanProcs = append(rep.OrphanProcs, fmt.Sprintf("pid %d (%s)", p.pid, p.comm))
	}
	rep.OrphanBoxes = boxes
	h.mu.Lock()
	rep.Containers = len(h.boxes)
	h.mu.Unlock()
}

// containers lists the opensandbox containers whose creating plugin was
// one of the run's (owner ids start with the plugin's pid).
func (h *harness) containers(t *testing.T, pluginPids map[int]bool) []string {
	const sock, ns = "/run/mcpruntime/containerd/containerd.sock", "mcpruntime-opensandbox"
	out, err := exec.Command("ctr", "-a", sock, "-n", ns, "containers", "ls", "-q").Output()
	if err != nil {
		t.Logf("ctr containers ls: %v", err)
		return nil
	}
	var mine []string
	for _, id := range strings.Fields(string(out)) {
		info, err := exec.Command("ctr", "-a", sock, "-n", ns, "containers", "info", id).Output()
		if err != nil {
			continue // removed meanwhile
		}
		var c struct {
			Labels map[string]string `json:"Labels"`
		}
		if json.NewDecoder(bytes.NewReader(info)).Decode(&c) != nil {
			continue
		}
		owner := c.Labels["mcpruntime.opensandbox/instance"]
		pid, err := strconv.Atoi(strings.SplitN(owner, "-", 2)[0])
		if err == nil && pluginPids[pid] {
			h.noteContainer(id)
			mine = append(mine, id+" (owner "+owner+")")
		}
	}
	return mine
}
