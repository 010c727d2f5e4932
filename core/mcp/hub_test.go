package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
)

func startHub(t *testing.T, servers []config.MCPServer, opts ...Option) *Hub {
	t.Helper()
	h, err := Start(context.Background(), servers, hclog.NewNullLogger(), opts...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func calc(env map[string]string) config.MCPServer {
	return config.MCPServer{Name: "calc", Command: []string{testmcpBin}, Env: env}
}

func call(t *testing.T, h *Hub, tool, args string) (string, bool) {
	t.Helper()
	res, err := h.CallTool(context.Background(), "calc", tool, json.RawMessage(args))
	if err != nil {
		t.Fatalf("CallTool %s: %v", tool, err)
	}
	return string(res.Result), res.IsError
}

func TestHubListsAndCallsTools(t *testing.T) {
	h := startHub(t, []config.MCPServer{calc(map[string]string{"TESTMCP_GREETING": "hello"})})
	if got := h.Servers(); len(got) != 1 || got[0] != "calc" {
		t.Fatalf("Servers = %v", got)
	}
	tools, err := h.Tools("calc")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Tool{}
	for _, tool := range tools {
		byName[tool.Name] = tool
	}
	add := byName["add"]
	if len(add.Params) != 2 || add.Params[0].Name != "a" || paramHint(h, "add", 0) != "int" || !add.Params[0].Required || add.Description != "Add two integers." {
		t.Fatalf("add = %+v", add)
	}
	if echo := byName["echo"]; len(echo.Params) != 2 || echo.Params[1].Name != "shout" || echo.Params[1].Required || paramHint(h, "echo", 1) != "bool" || echo.Params[1].Default != "false" {
		t.Fatalf("echo = %+v", echo)
	}
	if !byName["stats"].Structured || paramHint(h, "stats", 0) != "list[float]" {
		t.Fatalf("stats = %+v", byName["stats"])
	}

	if r, isErr := call(t, h, "add", `{"a": 2, "b": 3}`); r != `"5"` || isErr {
		t.Fatalf("add = %s %v", r, isErr)
	}
	if r, _ := call(t, h, "echo", `{"text": "hi", "shout": true}`); r != `"HI"` {
		t.Fatalf("echo = %s", r)
	}
	if r, _ := call(t, h, "stats", `{"numbers": [1, 2, 3.5]}`); r != `{"count":3,"sum":6.5}` {
		t.Fatalf("stats (structured) = %s", r)
	}
	if r, _ := call(t, h, "getenv", `{"name": "TESTMCP_GREETING"}`); r != `"hello"` {
		t.Fatalf("configured env not passed: %s", r)
	}
	if r, isErr := call(t, h, "fail", ``); !isErr || r != `"something broke"` {
		t.Fatalf("fail = %s %v", r, isErr)
	}
}

func TestHubErrors(t *testing.T) {
	h := startHub(t, []config.MCPServer{calc(nil)}, WithCallTimeout(300*time.Millisecond))
	ctx := context.Background()
	_, err := h.CallTool(ctx, "nope", "add", nil)
	if !errors.Is(err, ErrUnknownServer) || !strings.Contains(err.Error(), "calc") {
		t.Fatalf("unknown server: %v", err)
	}
	_, err = h.CallTool(ctx, "calc", "mul", nil)
	if !errors.Is(err, ErrUnknownTool) || !strings.Contains(err.Error(), "add") {
		t.Fatalf("unknown tool: %v", err)
	}
	_, err = h.CallTool(ctx, "calc", "add", json.RawMessage(`[1, 2]`))
	if err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Fatalf("non-object arguments: %v", err)
	}
	start := time.Now()
	_, err = h.CallTool(ctx, "calc", "sleep", json.RawMessage(`{"ms": 5000}`))
	if !errors.Is(err, ErrToolTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("timeout: %v after %s", err, time.Since(start))
	}
	// The server still answers after a timed-out call.
	if r, _ := call(t, h, "add", `{"a": 1, "b": 1}`); r != `"2"` {
		t.Fatalf("after timeout: %s", r)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Start(ctx, []config.MCPServer{{Name: "ghost", Command: []string{"no-such-mcp-server-xyz"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), `mcp_server "ghost"`) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing command: %v", err)
	}
	_, err = Start(ctx, []config.MCPServer{calc(map[string]string{"TESTMCP_MODE": "crash"})}, nil)
	if err == nil || !strings.Contains(err.Error(), "frobnicator") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("crash during init: %v", err)
	}
	start := time.Now()
	_, err = Start(ctx, []config.MCPServer{calc(map[string]string{"TESTMCP_MODE": "hang"})}, nil, WithInitTimeout(time.Second))
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 10*time.Second {
		t.Fatalf("hang during init: %v after %s", err, time.Since(start))
	}
	_, err = Start(ctx, []config.MCPServer{calc(nil), calc(nil)}, nil)
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	h, err := Start(context.Background(), []config.MCPServer{calc(nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	server := h.Status()[0].PID
	r, _ := call(t, h, "spawn_child", `{}`)
	child, err := strconv.Atoi(strings.Trim(r, `"`))
	if err != nil {
		t.Fatalf("spawn_child: %s", r)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range []int{server, child} {
		for alive(pid) {
			if time.Now().After(deadline) {
				out, _ := exec.Command("ps", "-o", "pid,stat,cmd", "-p", strconv.Itoa(pid)).CombinedOutput()
				t.Fatalf("process %d still running after Close:\n%s", pid, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := h.CallTool(context.Background(), "calc", "add", nil); err == nil {
		t.Fatal("call after Close succeeded")
	}
}

// alive reports whether pid runs (zombies awaiting their parent count as gone).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	out, err := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output()
	return err == nil && !strings.HasPrefix(strings.TrimSpace(string(out)), "Z")
}

// paramHint is the Python type the stubs give argument i of tool.
func paramHint(h *Hub, tool string, i int) string {
	for _, m := range h.layout() {
		for _, f := range m.funcs {
			if f.tool.Name == tool {
				return f.hints[i]
			}
		}
	}
	return ""
}
