package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// gone reports whether process pid has ended (or is a zombie nobody reaped
// yet: it runs nothing and holds no pipe).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 < len(s) && s[i+2] == 'Z'
}

// readPid polls path for the pid a fixture wrote there.
func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fixture wrote no pid to %s", path)
	return 0
}

// TestLaunchHandshakeDeadline: a plugin that never completes the handshake
// fails Launch within the start timeout, with a message naming the plugin
// and the timeout, and the processes it started are killed: a child that
// keeps the plugin's stdout open after the plugin exited, a plugin that
// prints nothing. Before the deadline covered them, Launch waited for the
// child to end (10 minutes for `sleep 600`).
func TestLaunchHandshakeDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	cases := map[string]string{
		// The plugin exits; its child keeps stdout (and the pipe) open.
		"holder": "sleep 600 &\necho $! > " + pidFile + "\nexit 0\n",
		// The plugin runs and prints nothing.
		"silent": "echo $$ > " + pidFile + "\nexec sleep 600\n",
	}
	const timeout = time.Second
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			os.Remove(pidFile)
			path := writeScript(t, dir, "mcpruntime-plugin-"+name, body)
			type result struct {
				p   *Plugin
				err error
			}
			res := make(chan result, 1)
			start := time.Now()
			go func() {
				p, err := Launch(context.Background(), path, WithStartTimeout(timeout))
				res <- result{p, err}
			}()
			var r result
			select {
			case r = <-res:
			case <-time.After(timeout + 2*killGrace + 5*time.Second):
				t.Fatalf("Launch of a plugin that never shakes hands still waits after %s", time.Since(start))
			}
			if r.err == nil {
				r.p.Kill()
				t.Fatal("Launch succeeded")
			}
			msg := r.err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, "no handshake within 1s") {
				t.Fatalf("error %q does not name the plugin and the deadline", msg)
			}
			pid := readPid(t, pidFile)
			deadline := time.Now().Add(10 * time.Second)
			for !gone(pid) {
				if time.Now().After(deadline) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("process %d the plugin started outlived the failed launch", pid)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestLaunchGarbageFailsFast: a plugin printing something other than a
// handshake fails at once (not at the deadline), showing what it printed,
// even while a process it started holds its stdout.
func TestLaunchGarbageFailsFast(t *testing.T) {
	dir := t.TempDir()
	path := writeScript(t, dir, "mcpruntime-plugin-garbage", "echo 'this is not a handshake'\nsleep 600\n")
	res := make(chan error, 1)
	go func() {
		p, err := Launch(context.Background(), path, WithStartTimeout(time.Minute))
		if err == nil {
			p.Kill()
			err = errors.New("Launch succeeded")
		}
		res <- err
	}()
	select {
	case err := <-res:
		if !strings.Contains(err.Error(), "this is not a handshake") || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not show the plugin and what it printed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Launch of a plugin printing garbage waits")
	}
}
