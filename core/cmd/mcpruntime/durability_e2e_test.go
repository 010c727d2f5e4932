package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/daemon"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Sessions across the death and the graceful stop of the session daemon,
// and of `mcpruntime serve`, and management calls while code runs: what a
// user sees from the command line and the API. (A plugin killed during or
// between executions: TestPluginKilledMidExec, TestPluginKilledBetweenExecs.)

// durableProject makes a project on backend (plugins in pluginDir) whose
// daemon idles out after idle.
func durableProject(t *testing.T, backend, pluginDir, idle, extra string) string {
	t.Helper()
	dir := t.TempDir()
	hcl := fmt.Sprintf("runtime {\n  backend = %q\n  plugin_dir = %q\n  daemon_idle_timeout = %q\n}\n%s", backend, pluginDir, idle, extra)
	if err := os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli(t, dir, "", "daemon", "stop") })
	return dir
}

// daemonPid is the pid of the project's running daemon.
func daemonPid(t *testing.T, dir string) int {
	t.Helper()
	r := cli(t, dir, "", "daemon", "status")
	var pid int
	if _, err := fmt.Sscanf(r.stdout, "daemon pid %d", &pid); err != nil {
		t.Fatalf("daemon status: %+v", r)
	}
	return pid
}

// waitPidGone polls until process pid no longer exists.
func waitPidGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %s", pid, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// socketOf is the daemon socket of the project in dir.
func socketOf(t *testing.T, dir string) string {
	t.Helper()
	cfg, err := config.Load(filepath.Join(dir, "runtime.hcl"), false)
	if err != nil {
		t.Fatal(err)
	}
	return daemon.SocketPath(cfg)
}

// unixHTTP is an HTTP client of the daemon socket.
func unixHTTP(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// apiExec runs code in session id through the API at base and returns
// the HTTP status, what the code printed and its result.
func apiExec(t *testing.T, c *http.Client, base, id, code string, create bool) (int, string, *sdk.ExecResult) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"code": code, "create": create})
	resp, err := c.Post(base+"/v1/sessions/"+id+"/execute", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	var out strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var e server.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("execution stream ended without a result: %v (output %q)", err, out.String())
		}
		switch e.Type {
		case "stdout":
			out.WriteString(e.Data)
		case "result":
			return resp.StatusCode, out.String(), e.Result
		case "error":
			t.Fatalf("execution error: %s", e.Error)
		}
	}
}

// execJSON is `exec --json` in a session.
type execJSON struct {
	Stdout    string  `json:"stdout"`
	ExitCode  int     `json:"exit_code"`
	Error     *string `json:"error"`
	StateLost bool    `json:"state_lost"`
}

func execSessionJSON(t *testing.T, dir, id, code string) (execJSON, result) {
	t.Helper()
	r := cli(t, dir, "", "exec", "--json", "--session", id, "-c", code)
	var out execJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("exec --json: %v: %+v", err, r)
	}
	return out, r
}

// The acceptance test of hibernation: the daemon idles out, and the next
// daemon gives the session back with its variables.
func TestDaemonIdleExitHibernatesSessions(t *testing.T) {
	for _, backend := range []string{"hostpython", "wasm", "opensandbox"} {
		t.Run(backend, func(t *testing.T) {
			dir := durableProject(t, backend, needBackend(t, backend), "5s", "")
			if r := cli(t, dir, "", "exec", "--session", "s", "-c", "x = 41\ng = (i for i in range(3))"); r.code != 0 {
				t.Fatalf("x = 41: %+v", r)
			}
			// The wake's note names what was not carried (the generator).
			waitPidGone(t, daemonPid(t, dir), 2*time.Minute)
			cli(t, dir, "", "exec", "--session", "wake-the-daemon", "-c", "1")
			code, out, res := apiExec(t, unixHTTP(socketOf(t, dir)), "http://daemon", "s", "print(x)", false)
			if code != http.StatusOK || out != "41\n" || res.StateLost {
				t.Fatalf("first wake: %d %q %+v", code, out, res)
			}
			for _, want := range []string{"hibernated", "idle", "not carried: g"} {
				if !strings.Contains(res.Message, want) {
					t.Errorf("note %q lacks %q", res.Message, want)
				}
			}
			// And again, from the command line.
			waitPidGone(t, daemonPid(t, dir), 2*time.Minute)
			r := cli(t, dir, "", "exec", "--session", "s", "-c", "print(x + 1)")
			if r.stdout != "42\n" || r.code != 0 {
				t.Fatalf("after the idle exit: %+v", r)
			}
			// The CLI tells a person what the result's note says.
			if !strings.Contains(r.stderr, "mcpruntime: note:") || !strings.Contains(r.stderr, "hibernated") {
				t.Fatalf("the wake's note is not on stderr: %q", r.stderr)
			}
		})
	}
}

// kill -9 of the daemon between two executions: the session is recovered
// (a backend whose sandboxes outlive the core) or its next execution says
// state_lost, never a silent NameError.
func TestDaemonKilledSessionIsRecoveredOrReportsStateLost(t *testing.T) {
	for _, backend := range []string{"hostpython", "opensandbox"} {
		t.Run(backend, func(t *testing.T) {
			dir := durableProject(t, backend, needBackend(t, backend), "2m", "")
			if r := cli(t, dir, "", "exec", "--session", "s", "-c", "x = 1"); r.code != 0 {
				t.Fatalf("x = 1: %+v", r)
			}
			pid := daemonPid(t, dir)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitPidGone(t, pid, 30*time.Second)
			out, r := execSessionJSON(t, dir, "s", "print(x)")
			switch {
			case out.Stdout == "1\n" && !out.StateLost:
				t.Logf("%s recovered the session", backend)
			case out.StateLost && out.Error != nil && strings.Contains(*out.Error, "session daemon restarted"):
			default:
				t.Fatalf("after kill -9 of the daemon: %+v %+v", out, r)
			}
			if backend == "hostpython" && !out.StateLost {
				t.Fatal("hostpython cannot recover a session: state_lost expected")
			}
			// Without --json the note goes to stderr; the exit status is the code's.
			if err := syscall.Kill(daemonPid(t, dir), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if r := cli(t, dir, "", "exec", "--session", "s", "-c", "print(x)"); backend == "hostpython" && (r.code != 1 || !strings.Contains(r.stderr, "session s was restarted")) {
				t.Fatalf("CLI after the second kill: %+v", r)
			}
			// Unknown ids are not created by the API.
			code, body, _ := apiExec(t, unixHTTP(socketOf(t, dir)), "http://daemon", "typo", "1", false)
			if code != http.StatusNotFound || !strings.Contains(body, "session not found") {
				t.Fatalf("unknown session: %d %s", code, body)
			}
		})
	}
}

// kill -9 of `mcpruntime serve`: the restarted server knows the session
// and says state_lost on its next execution.
func TestServerKilledSessionReportsStateLost(t *testing.T) {
	addr := freeAddr(t)
	dir := durableProject(t, "hostpython", needBackend(t, "hostpython"), "2m", fmt.Sprintf("server {\n  listen = %q\n}\n", addr))
	start := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/v1/health")
			if err == nil {
				resp.Body.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not come up: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	base := "http://" + addr
	srv := start()
	if code, body, _ := apiExec(t, http.DefaultClient, base, "s", "x = 1", false); code != http.StatusNotFound {
		t.Fatalf("executing in an unknown session: %d %s", code, body)
	}
	if code, _, res := apiExec(t, http.DefaultClient, base, "s", "x = 1", true); code != http.StatusOK || !res.OK() {
		t.Fatalf("x = 1 with create: %d %+v", code, res)
	}
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	start()
	resp, err := http.Get(base + "/v1/sessions")
	if err != nil {
		t.Fatal(err)
	}
	var list []server.SessionInfo
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list) != 1 || list[0].ID != "s" || list[0].Execs != 1 {
		t.Fatalf("sessions after the restart: %+v %v", list, err)
	}
	code, out, res := apiExec(t, http.DefaultClient, base, "s", "print(x)", false)
	if code != http.StatusOK || !res.StateLost || !strings.Contains(res.Message, "server restarted") {
		t.Fatalf("after kill -9 of the server: %d %q %+v", code, out, res)
	}
}

// List, health and status answer while a session sleeps; DELETE of the
// busy session returns at once and its code stops.
func TestManagementDoesNotWaitForCode(t *testing.T) {
	dir := durableProject(t, "hostpython", needBackend(t, "hostpython"), "2m", "")
	if r := cli(t, dir, "", "exec", "--session", "other", "-c", "1"); r.code != 0 {
		t.Fatalf("start the daemon: %+v", r)
	}
	busy := exec.Command(filepath.Join(binDir, "mcpruntime"), "exec", "--session", "busy", "-c",
		"import time\nopen('started', 'w').close()\ntime.sleep(5)\nopen('after', 'w').close()")
	busy.Dir = dir
	var busyErr bytes.Buffer
	busy.Stderr = &busyErr
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "workspace")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(ws, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the busy session never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := unixHTTP(socketOf(t, dir))
	for _, path := range []string{"/v1/sessions", "/v1/health"} {
		t0 := time.Now()
		resp, err := c.Get("http://daemon" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(t0); d > 100*time.Millisecond {
			t.Errorf("GET %s took %s while a session ran code", path, d)
		}
	}
	t0 := time.Now()
	r := cli(t, dir, "", "daemon", "status")
	if d := time.Since(t0); d > time.Second || !strings.Contains(r.stdout, "busy") {
		// The bound includes starting the CLI process; the API calls above
		// are held to 100 ms.
		t.Errorf("daemon status took %s: %+v", d, r)
	}
	t0 = time.Now()
	req, _ := http.NewRequest(http.MethodDelete, "http://daemon/v1/sessions/busy", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(t0); d > time.Second || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE of a busy session: %s after %s", resp.Status, time.Since(t0))
	}
	if err := busy.Wait(); err == nil || !strings.Contains(busyErr.String(), "closed") {
		t.Errorf("the cancelled exec: %v %s", err, busyErr.String())
	}
	deadline = time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(ws, "after")); err == nil {
			t.Fatal("the code of the deleted session ran on")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A killed daemon's plugins leave what they owned (wasm: a run dir); the
// next daemon starts such a plugin at once, whose start-up sweep removes
// it, even if no session uses that backend.
func TestRestartedDaemonSweepsDeadPluginsLeftovers(t *testing.T) {
	wasm := needBackend(t, "wasm")
	hostpython := needBackend(t, "hostpython")
	plugins := t.TempDir()
	for dir, name := range map[string]string{wasm: "mcpruntime-plugin-wasm", hostpython: "mcpruntime-plugin-hostpython"} {
		if err := os.Symlink(filepath.Join(dir, name), filepath.Join(plugins, name)); err != nil {
			t.Fatal(err)
		}
	}
	// wasm finds its artefacts beside its executable.
	for _, extra := range []string{"wasm-python"} {
		if _, err := os.Stat(filepath.Join(wasm, extra)); err == nil {
			if err := os.Symlink(filepath.Join(wasm, extra), filepath.Join(plugins, extra)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := durableProject(t, "hostpython", plugins, "2m", "sandbox \"wasm\" {}\n")
	if r := cli(t, dir, "", "exec", "--session", "w", "--backend", "wasm", "-c", "1"); r.code != 0 {
		t.Fatalf("wasm session: %+v", r)
	}
	if code, _, _ := apiExec(t, unixHTTP(socketOf(t, dir)), "http://daemon", "w", "1", false); code != http.StatusOK {
		t.Fatalf("wasm session again: %d", code)
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://daemon/v1/sessions/w", nil)
	if resp, err := unixHTTP(socketOf(t, dir)).Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	runDirs, _ := filepath.Glob(filepath.Join(dir, ".mcpruntime", "plugins", "wasm", "run-*"))
	if len(runDirs) == 0 {
		t.Fatal("the wasm plugin made no run dir")
	}
	pid := daemonPid(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPidGone(t, pid, 30*time.Second)
	if r := cli(t, dir, "", "exec", "--session", "h", "-c", "1"); r.code != 0 {
		t.Fatalf("hostpython session in the next daemon: %+v", r)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := 0
		for _, d := range runDirs {
			if _, err := os.Stat(d); err == nil {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead wasm plugin's run dirs %v are still there", runDirs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
