//go:build chaos

// Package chaos injects faults into a running mcpruntime and checks that
// nothing is lost silently. It drives the built binaries (make build) as a
// user would: sessions on wasm and opensandbox, executed through
// `mcpruntime serve` over HTTP and through the session daemon
// (`exec --session`), while the core processes and their plugins are
// killed with SIGKILL at random. Afterwards it checks that
//
//   - every session either kept its variables or said state_lost: a
//     counter that restarts without the flag is a silent loss;
//   - every acknowledged execution has its replay record, and every replay
//     log reads whole (no torn or glued line);
//   - no process the run started (plugins, workers) and no container its
//     plugins created outlives the run's final shutdown and sweep.
//
// Run it with `make chaos` (CHAOS_DURATION, default 60s; CHAOS_REPORT
// writes the numbers as JSON).
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/daemon"
)

// Report is what a run measured; the README's reliability section quotes it.
type Report struct {
	Duration      string         `json:"duration"`
	Faults        map[string]int `json:"faults"`
	Execs         int            `json:"execs"`
	ExecErrors    int            `json:"exec_errors"`
	StateLost     int            `json:"state_lost_reported"`
	Recovered     int            `json:"recovered_after_fault"`
	SilentLosses  []string       `json:"silent_losses"`
	Records       int            `json:"replay_records_checked"`
	MissingRecs   []string       `json:"missing_records"`
	BadLines      []string       `json:"unreadable_replay_lines"`
	ReplayErrors  int            `json:"replay_errors_reported"`
	Processes     int            `json:"processes_tracked"`
	OrphanProcs   []string       `json:"orphaned_processes"`
	Containers    int            `json:"containers_tracked"`
	OrphanBoxes   []string       `json:"orphaned_containers"`
	SessionsTotal int            `json:"sessions"`
}

func TestChaos(t *testing.T) {
	duration := 60 * time.Second
	if d := os.Getenv("CHAOS_DURATION"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("CHAOS_DURATION: %v", err)
		}
	}
	h := newHarness(t)
	rep := &Report{Duration: duration.String(), Faults: map[string]int{}}

	h.startServer(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sessions []*session
	for _, backend := range []string{"wasm", "opensandbox"} {
		for i := 0; i < 2; i++ {
			sessions = append(sessions, &session{id: fmt.Sprintf("chaos-http-%s-%d", backend, i), backend: backend, via: viaHTTP})
		}
		sessions = append(sessions, &session{id: "chaos-daemon-" + backend, backend: backend, via: viaDaemon})
	}
	rep.SessionsTotal = len(sessions)
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(h, stop)
		}()
	}
	tracker := h.track(stop)

	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(1500+rand.IntN(2500)) * time.Millisecond)
		if fault := h.inject(t); fault != "" {
			rep.Faults[fault]++
		}
		h.containers(t, tracker.pids("mcpruntime-plug")) // counts them
	}
	close(stop)
	wg.Wait()
	h.shutdown(t)
	tracker.wait()

	for _, s := range sessions {
		s.mu.Lock()
		rep.Execs += s.acked
		rep.ExecErrors += s.errors
		rep.StateLost += s.lost
		rep.Recovered += s.recovered
		rep.ReplayErrors += s.replayErrors
		rep.SilentLosses = append(rep.SilentLosses, s.silent...)
		s.mu.Unlock()
	}
	h.checkReplay(rep, sessions)
	h.checkOrphans(t, rep, tracker)

	out, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("chaos report:\n%s", out)
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
	t.Cleanup(func() { h.keepLogs(t) })
	switch {
	case rep.Execs == 0:
		t.Error("no execution succeeded")
	case len(rep.SilentLosses) > 0:
		t.Errorf("%d sessions lost their variables without state_lost", len(rep.SilentLosses))
	}
	if len(rep.MissingRecs) > 0 || len(rep.BadLines) > 0 {
		t.Errorf("replay: %d acknowledged executions without a record, %d unreadable lines", len(rep.MissingRecs), len(rep.BadLines))
	}
	if len(rep.OrphanProcs) > 0 || len(rep.OrphanBoxes) > 0 {
		t.Errorf("orphans after shutdown: %d processes, %d containers", len(rep.OrphanProcs), len(rep.OrphanBoxes))
	}
}

// harness owns the project directory and the core processes of the run.
type harness struct {
	root, bin, dir, addr, token string
	socket                      string // the session daemon's

	mu     sync.Mutex
	server *exec.Cmd
	boxes  map[string]bool // opensandbox containers of the run's plugins seen
}

// keepPortFree moves the server to another port when its own was taken
// while it was down (in CI, once: another process bound the freed port
// between the kill and the restart, and serve failed with EADDRINUSE).
func (h *harness) keepPortFree(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ln, err := net.Listen("tcp", h.addr); err == nil {
		ln.Close()
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := filepath.Join(h.dir, "runtime.hcl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hcl := strings.Replace(string(b), fmt.Sprintf("listen = %q", h.addr), fmt.Sprintf("listen = %q", addr), 1)
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("port of %s taken while the server was down: it moves to %s", h.addr, addr)
	h.addr = addr
}

// address is where the server listens.
func (h *harness) address() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr
}

func (h *harness) noteContainer(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.boxes == nil {
		h.boxes = map[string]bool{}
	}
	h.boxes[id] = true
}

func newHarness(t *testing.T) *harness {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "mcpruntime")
	if b := os.Getenv("MCPRUNTIME_BIN"); b != "" {
		bin = b // another build of the core, against the same plugins
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (run make build first)", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &harness{root: root, bin: bin, dir: t.TempDir(), addr: addr, token: "chaos-token-chaos-token"}
	hcl := fmt.Sprintf(`runtime {
  backend             = "wasm"
  workspace           = "./workspace"
  plugin_dir          = %q
  daemon_idle_timeout = "10m"
}
server {
  listen = %q
  token  = %q
}
sandbox "wasm" {
  pool {
    size = 1
  }
}
sandbox "opensandbox" {
  pool {
    size = 1
  }
}
`, filepath.Join(root, "bin", "plugins"), addr, h.token)
	path := filepath.Join(h.dir, "runtime.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(hcl), path)
	if err != nil {
		t.Fatal(err)
	}
	h.socket = daemon.SocketPath(cfg)
	return h
}

func (h *harness) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "MCPRUNTIME_LOG=info")
	return cmd
}

// startServer starts `mcpruntime serve` and waits until it answers.
func (h *harness) startServer(t *testing.T) {
	h.keepPortFree(t)
	cmd := h.command("serve")
	logf, err := os.OpenFile(filepath.Join(h.dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); logf.Close() }() //nolint:errcheck // killed on purpose
	h.mu.Lock()
	h.server = cmd
	h.mu.Unlock()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // after a failure; a no-op once it exited
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.get("/v1/health"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(h.dir, "serve.log"))
	t.Fatalf("mcpruntime serve did not answer within 30s; its log:\n%s", log)
}

// keepLogs copies the server's and the daemon's logs out of the run's
// temporary directory when the run failed (CHAOS_LOGS, default
// /tmp/mcpruntime-chaos-logs).
func (h *harness) keepLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	dst := os.Getenv("CHAOS_LOGS")
	if dst == "" {
		dst = "/tmp/mcpruntime-chaos-logs"
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	for _, src := range []string{"serve.log", ".mcpruntime/daemon.log"} {
		if b, err := os.ReadFile(filepath.Join(h.dir, src)); err == nil {
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(src)), b, 0o644); err != nil {
				t.Logf("keep %s: %v", src, err)
			}
		}
	}
	t.Logf("logs of the failed run kept in %s", dst)
}

// corePids are the live core processes: the server and the daemon.
func (h *harness) corePids() []int {
	var out []int
	h.mu.Lock()
	if h.server != nil && h.server.Process != nil {
		out = append(out, h.server.Process.Pid)
	}
	h.mu.Unlock()
	if pid := h.daemonPid(); pid > 0 {
		out = append(out, pid)
	}
	return out
}

// daemonPid asks the daemon's socket for its pid (0: none answers). The
// tracker polls it ten times a second, so it is one request, not a CLI
// process.
func (h *harness) daemonPid() int {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.socket)
		},
	}}
	resp, err := c.Get("http://daemon/v1/health")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var health struct {
		Pid int `json:"pid"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&health) != nil {
		return 0
	}
	return health.Pid
}

// inject applies one fault at random and names it ("" if none applied).
func (h *harness) inject(t *testing.T) string {
	switch rand.IntN(4) {
	case 0:
		h.mu.Lock()
		srv := h.server
		h.mu.Unlock()
		if srv == nil || srv.Process == nil {
			return ""
		}
		_ = srv.Process.Kill()
		// Its port is free once it is gone.
		if !waitGone(srv.Process.Pid, 30*time.Second) {
			t.Fatalf("mcpruntime serve pid %d outlived SIGKILL by 30s", srv.Process.Pid)
		}
		h.startServer(t)
		return "server_killed"
	case 1:
		if pid := h.daemonPid(); pid > 0 && kill9(pid) {
			return "daemon_killed"
		}
	default:
		// Plugins are children of a core process; wasm workers, the same
		// binary, are the plugin's children: killing one kills a kernel.
		cores := h.corePids()
		plugins := descendants(cores, func(p proc) bool { return strings.HasPrefix(p.comm, "mcpruntime-plug") })
		if len(plugins) == 0 {
			return ""
		}
		p := plugins[rand.IntN(len(plugins))]
		what := "kernel_killed"
		if slices.Contains(cores, p.ppid) {
			what = "plugin_killed"
		}
		if kill9(p.pid) {
			return what
		}
	}
	return ""
}

// shutdown stops the server and the daemon gracefully.
func (h *harness) shutdown(t *testing.T) {
	h.mu.Lock()
	srv := h.server
	h.mu.Unlock()
	if srv != nil && srv.Process != nil {
		_ = srv.Process.Signal(os.Interrupt)
		waitGone(srv.Process.Pid, 60*time.Second)
	}
	if out, err := h.command("daemon", "stop").CombinedOutput(); err != nil {
		t.Logf("daemon stop: %v: %s", err, out)
	}
}
