package main

import (
	"encoding/json"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// limitedProject configures hostpython with a 2 s limit; the code below
// sleeps 4 s and asks for 10 s. It must stop at the operator's 2 s.
func limitedProject(t *testing.T) string {
	return project(t, "sandbox \"hostpython\" {\n  limits {\n    timeout = \"2s\"\n  }\n}\n")
}

const sleepsPastLimit = "import time; time.sleep(4); print('ran past the limit')"

func TestClientTimeoutClampedCLI(t *testing.T) {
	dir := limitedProject(t)
	for _, args := range [][]string{
		{"exec", "--json", "--timeout", "10s", "-c", sleepsPastLimit},
		{"exec", "--json", "--session", "s", "--timeout", "10s", "-c", sleepsPastLimit},
	} {
		// The code sleeps 4s past a 2s limit: had the requested 10s applied,
		// it would print; the exit status and output say which limit held
		// (no wall-clock bound: a loaded host makes those lie).
		r := cli(t, dir, "", args...)
		var out execOutput
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v: %v\n%+v", args, err, r)
		}
		if r.code != 124 || strings.Contains(out.Stdout, "ran past") || out.Limits == nil ||
			!out.Limits.Clamped || out.Limits.TimeoutMs != 2000 || out.Limits.RequestedTimeoutMs != 10000 {
			t.Errorf("%v: exit %d, limits %+v, stdout %q", args, r.code, out.Limits, out.Stdout)
		}
	}
	r := cli(t, dir, "", "exec", "--timeout", "10s", "-c", "print('quick')")
	if r.code != 0 || !strings.Contains(r.stderr, "above limits.timeout; 2s applied") {
		t.Errorf("a clamped --timeout is not reported: %+v", r)
	}
}

func TestClientTimeoutClampedMCP(t *testing.T) {
	dir := limitedProject(t)
	c, ctx, _ := mcpSession(t, dir)
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "execute_python", map[string]any{"code": sleepsPastLimit, "timeout_ms": 10000}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var out struct {
		Stdout    string `json:"stdout"`
		ErrorKind string `json:"error_kind"`
		Limits    struct {
			TimeoutMs int64 `json:"timeout_ms"`
			Clamped   bool  `json:"clamped"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.ErrorKind != "timeout" || strings.Contains(out.Stdout, "ran past") || !out.Limits.Clamped || out.Limits.TimeoutMs != 2000 {
		t.Fatalf("execute_python with timeout_ms above the limit: %s", raw)
	}
}
