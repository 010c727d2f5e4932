package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A plugin is a third party: the core's secrets (API keys, the server
// token) must not be in its environment, where its sandbox code could read
// them from /proc/<plugin>/environ.
func TestPluginEnvironmentIsAllowListed(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-test-secret")
	t.Setenv("MCPRUNTIME_TOKEN", "token-test-secret-0123456789")
	t.Setenv("PASSED_ON", "visible")
	dir := project(t, "sandbox \"hostpython\" {\n  pass_env = [\"PASSED_ON\"]\n  env = { SET_HERE = \"set\" }\n}\n")
	if r := cli(t, dir, "", "exec", "--session", "s", "-c", "x = 1"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	r := cli(t, dir, "", "daemon", "status")
	m := regexp.MustCompile(`daemon pid (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("daemon status: %+v", r)
	}
	daemon, _ := strconv.Atoi(m[1])
	plugin := filepath.Join(binDir, "plugins", "mcpruntime-plugin-hostpython")
	pid := childRunning(t, daemon, plugin)
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	for _, secret := range []string{"OPENAI_API_KEY", "MCPRUNTIME_TOKEN"} {
		if _, ok := env[secret]; ok {
			t.Errorf("the plugin's environment holds %s", secret)
		}
	}
	if env["PASSED_ON"] != "visible" || env["SET_HERE"] != "set" || env["PATH"] == "" {
		t.Errorf("the plugin's environment lacks what its block names or PATH: %v", env)
	}
}

// childRunning polls for the child of parent running exe and returns its pid.
func childRunning(t *testing.T, parent int, exe string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			pid, _ := strconv.Atoi(filepath.Base(p))
			if target, err := os.Readlink(p + "/exe"); err != nil || target != exe {
				continue
			}
			if ppid(pid) == parent {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no child of %d runs %s", parent, exe)
	return 0
}

func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`(?m)^PPid:\s+(\d+)`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
