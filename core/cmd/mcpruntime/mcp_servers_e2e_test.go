package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// npmBin returns the path of an MCP server installed by `make npm-deps`
// into deps/npm. Without CI it skips when they are not installed; under CI
// a missing server fails.
func npmBin(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(mustWd(), "..", "..", "..", "deps", "npm", "node_modules", ".bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (run `make npm-deps`): %v", name, err)
		}
		t.Fatalf("%s is not installed (run `make npm-deps`): %v", name, err)
	}
	return p
}

// A server whose command does not exist costs code that does not use it
// nothing but a warning, and its calls say why they fail.
func TestMCPServerMissingCommandIsSkipped(t *testing.T) {
	dir := project(t, "mcp_server \"ghost\" {\n  command = [\"no-such-mcp-server-xyz\"]\n}\n"+mcpServerBlock(t))
	r := cli(t, dir, "", "exec", "-c", "print(1)")
	if r.code != 0 || r.stdout != "1\n" || !strings.Contains(r.stderr, "ghost") || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("print(1) with a missing server: %+v", r)
	}
	r = cli(t, dir, "", "exec", "-c", `import mcpruntime
try:
    mcpruntime.call_tool("ghost", "anything", {})
except mcpruntime.HostCallError as e:
    print("ghost:", e)
from tools.calc import add
print(add(a=2, b=3))`)
	if r.code != 0 || !strings.Contains(r.stdout, "MCP server unavailable") || !strings.Contains(r.stdout, "not found") || !strings.HasSuffix(r.stdout, "5\n") {
		t.Fatalf("calls with a missing server: %+v", r)
	}
	r = cli(t, dir, "", "doctor")
	if !regexp.MustCompile(`FAIL\s+mcp ghost\s+unavailable: .*not found`).MatchString(r.stdout) || !regexp.MustCompile(`ok\s+mcp calc\s+ready: \d+ tools`).MatchString(r.stdout) {
		t.Fatalf("doctor:\n%s", r.stdout)
	}
}

// A tool that kills its server fails clearly; the next call, in the same
// daemon session or another, restarts the server and works.
func TestMCPServerRestartsAfterCrash(t *testing.T) {
	dir := project(t, mcpServerBlock(t))
	r := cli(t, dir, "", "exec", "--session", "a", "-c", `import mcpruntime
import tools.calc as calc
kept = 41
first = calc.pid()
try:
    calc.crash()
except mcpruntime.HostCallError as e:
    print("crash:", e)`)
	if r.code != 0 || !strings.Contains(r.stdout, "exited during call crash") || !strings.Contains(r.stdout, "crashing on purpose") {
		t.Fatalf("crash: %+v", r)
	}
	r = cli(t, dir, "", "exec", "--session", "a", "-c", "print(calc.add(a=kept, b=1), calc.pid() != first)")
	if r.code != 0 || r.stdout != "42 True\n" {
		t.Fatalf("after the crash: %+v", r)
	}
	r = cli(t, dir, "", "exec", "--session", "b", "-c", "import tools.calc as calc; print(calc.add(a=1, b=1))")
	if r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("a new session after the crash: %+v", r)
	}
}

// daemonChildren returns the pids of the daemon's child processes whose
// command line contains pattern.
func daemonChildren(t *testing.T, dir, pattern string) []int {
	t.Helper()
	r := cli(t, dir, "", "daemon", "status")
	m := regexp.MustCompile(`daemon pid (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("daemon status: %+v", r)
	}
	out, _ := exec.Command("pgrep", "-P", m[1]).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		cmdline, err := os.ReadFile("/proc/" + f + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), pattern) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	return pids
}

// The real npm servers: a hanging tool times out at its tool_timeout and
// the session keeps its variables; server-memory killed by pid restarts on
// the next call.
func TestMCPRealServersTimeoutAndKill(t *testing.T) {
	everything, memory := npmBin(t, "mcp-server-everything"), npmBin(t, "mcp-server-memory")
	dir := project(t, fmt.Sprintf(`mcp_server "everything" {
  command       = [%q]
  tool_timeouts = { "trigger-long-running-operation" = "2s" }
}
mcp_server "memory" {
  command = [%q]
  env     = { MEMORY_FILE_PATH = %q }
}
`, everything, memory, filepath.Join(t.TempDir(), "memory.jsonl")))
	start := time.Now()
	r := cli(t, dir, "", "exec", "--session", "s", "-c", `import mcpruntime
kept = "still here"
print(mcpruntime.call_tool("everything", "echo", {"message": "hi"}))
try:
    mcpruntime.call_tool("everything", "trigger-long-running-operation", {"duration": 60, "steps": 2})
except mcpruntime.HostCallError as e:
    print("timeout:", e)`)
	took := time.Since(start)
	if r.code != 0 || !strings.Contains(r.stdout, "Echo: hi") || !strings.Contains(r.stdout, "timed out") || !strings.Contains(r.stdout, "within 2s") {
		t.Fatalf("hanging tool: %+v", r)
	}
	if took > 25*time.Second {
		t.Fatalf("the hanging tool took the cell %s; its timeout is 2s", took)
	}
	r = cli(t, dir, "", "exec", "--session", "s", "-c", "print(kept)")
	if r.code != 0 || r.stdout != "still here\n" {
		t.Fatalf("variables after the timeout: %+v", r)
	}

	const create = `import mcpruntime
print(mcpruntime.call_tool("memory", "create_entities", {"entities": [{"name": "%s", "entityType": "test", "observations": ["x"]}]}))`
	r = cli(t, dir, "", "exec", "--session", "s", "-c", fmt.Sprintf(create, "alpha"))
	if r.code != 0 || !strings.Contains(r.stdout, "alpha") {
		t.Fatalf("memory: %+v", r)
	}
	pids := daemonChildren(t, dir, "server-memory")
	if len(pids) != 1 {
		t.Fatalf("server-memory processes under the daemon: %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = cli(t, dir, "", "exec", "--session", "s", "-c", fmt.Sprintf(create, "beta")+"\nprint(kept)")
	if r.code != 0 || !strings.Contains(r.stdout, "beta") || !strings.HasSuffix(r.stdout, "still here\n") {
		t.Fatalf("after killing server-memory: %+v", r)
	}
}
