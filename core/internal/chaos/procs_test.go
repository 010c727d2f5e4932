//go:build chaos

package chaos

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process seen in /proc: pid plus start time name it uniquely.
type proc struct {
	pid, ppid int
	start     string
	comm      string
}

func (p proc) key() string { return strconv.Itoa(p.pid) + "@" + p.start }

// readProc reads /proc/PID/stat (nil if the process is gone).
func readProc(pid int) *proc {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return nil
	}
	fields := strings.Fields(s[close+1:])
	if len(fields) < 20 {
		return nil
	}
	ppid, _ := strconv.Atoi(fields[1])
	// fields[0] is the state (field 3); the start time is field 22.
	if fields[0] == "Z" {
		return nil // a zombie holds nothing but its pid
	}
	return &proc{pid: pid, ppid: ppid, start: fields[19], comm: s[open+1 : close]}
}

// allProcs lists the live processes.
func allProcs() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p := readProc(pid); p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// descendants lists the live descendants of roots that match keep.
func descendants(roots []int, keep func(proc) bool) []proc {
	procs := allProcs()
	children := map[int][]proc{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if keep(c) {
				out = append(out, c)
			}
			queue = append(queue, c.pid)
		}
	}
	return out
}

// tracker remembers every process the run's core processes started.
type tracker struct {
	mu   sync.Mutex
	seen map[string]proc
	done chan struct{}
}

// track polls the core processes' descendants until stop is closed.
func (h *harness) track(stop <-chan struct{}) *tracker {
	tr := &tracker{seen: map[string]proc{}, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for {
			tr.scan(h.corePids())
			select {
			case <-stop:
				tr.scan(h.corePids())
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return tr
}

func (tr *tracker) scan(roots []int) {
	found := descendants(roots, func(proc) bool { return true })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range found {
		tr.seen[p.key()] = p
	}
}

func (tr *tracker) wait() { <-tr.done }

// alive lists tracked processes still running (same pid, same start).
func (tr *tracker) alive() []proc {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []proc
	for _, p := range tr.seen {
		if now := readProc(p.pid); now != nil && now.start == p.start {
			out = append(out, p)
		}
	}
	return out
}

// pids lists the tracked pids whose command starts with prefix.
func (tr *tracker) pids(prefix string) map[int]bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[int]bool{}
	for _, p := range tr.seen {
		if strings.HasPrefix(p.comm, prefix) {
			out[p.pid] = true
		}
	}
	return out
}

func kill9(pid int) bool { return syscall.Kill(pid, syscall.SIGKILL) == nil }

// waitGone polls until pid has exited or d passed.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if readProc(pid) == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
