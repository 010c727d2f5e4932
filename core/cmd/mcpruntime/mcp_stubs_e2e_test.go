package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// everythingProject is a project on backend with server-everything and
// server-memory from deps/npm.
func everythingProject(t *testing.T, backend string) string {
	t.Helper()
	everything, memory := npmBin(t, "mcp-server-everything"), npmBin(t, "mcp-server-memory")
	return durableProject(t, backend, needBackend(t, backend), "2m", fmt.Sprintf(`mcp_server "everything" {
  command = [%q]
}
mcp_server "memory" {
  command = [%q]
  env     = { MEMORY_FILE_PATH = %q }
}
`, everything, memory, filepath.Join(t.TempDir(), "memory.jsonl")))
}

// waitForStubs starts both servers and polls until their tool lists are in
// the stubs (servers start lazily; the stubs are rewritten when a listing
// arrives).
func waitForStubs(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := cli(t, dir, "", "exec", "-c", `import mcpruntime
mcpruntime.call_tool("memory", "read_graph", {})
mcpruntime.call_tool("everything", "echo", {"message": "x"})
import tools.memory, tools.everything
print(hasattr(tools.memory, "Entity") and hasattr(tools.everything, "trigger_long_running_operation"))`)
		if r.code == 0 && r.stdout == "True\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stubs never listed the servers' tools: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// parallelCalls runs three 2-second calls of server-everything's
// trigger-long-running-operation at once, with asyncio and (where the
// sandbox has threads) with threads, and prints each wall time in seconds.
const parallelCalls = `import asyncio, time
from tools.everything import trigger_long_running_operation as op
async def main():
    return await asyncio.gather(*(op.call_async(duration=2, steps=1) for _ in range(3)))
t = time.monotonic()
rs = asyncio.run(main())
assert all("completed" in r for r in rs), rs
print("asyncio %.3f" % (time.monotonic() - t))
try:
    import threading
    threading.Thread(target=int).start()
except Exception:
    pass
else:
    out = []
    ts = [threading.Thread(target=lambda: out.append(op(duration=2, steps=1))) for _ in range(3)]
    t = time.monotonic()
    for th in ts: th.start()
    for th in ts: th.join()
    assert len(out) == 3, out
    print("threads %.3f" % (time.monotonic() - t))
`

// The acceptance test of parallel tool calls: three 2-second calls of a
// real npm server finish in under 3 seconds, on wasm (asyncio: WASI has no
// threads) and on opensandbox (asyncio and threads).
func TestMCPParallelToolCalls(t *testing.T) {
	for _, backend := range []string{"wasm", "opensandbox"} {
		t.Run(backend, func(t *testing.T) {
			dir := everythingProject(t, backend)
			waitForStubs(t, dir)
			// Start the session and the server first: the bound is on the calls.
			if r := cli(t, dir, "", "exec", "--session", "p", "-c", "from tools.everything import echo\nprint(echo(message='hi'))"); r.code != 0 || !strings.Contains(r.stdout, "Echo: hi") {
				t.Fatalf("warm-up: %+v", r)
			}
			r := cli(t, dir, "", "exec", "--session", "p", "-c", parallelCalls)
			if r.code != 0 {
				t.Fatalf("parallel calls: %+v", r)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if backend == "opensandbox" && len(lines) != 2 {
				t.Fatalf("want asyncio and threads timings: %q", r.stdout)
			}
			for _, l := range lines {
				kind, secs, _ := strings.Cut(l, " ")
				s, err := strconv.ParseFloat(secs, 64)
				if err != nil {
					t.Fatalf("timing line %q: %v", l, err)
				}
				t.Logf("%s: 3 x 2 s calls with %s took %.2f s", backend, kind, s)
				if s >= 3 {
					t.Errorf("%s: 3 parallel 2 s calls with %s took %.2f s, want < 3 s", backend, kind, s)
				}
			}
		})
	}
}

// Typed stubs of a real server: server-memory's create_entities takes a
// list of a nested TypedDict, and its result is typed from its output
// schema; images come back as bytes; failures carry their code.
func TestMCPTypedStubsOfRealServers(t *testing.T) {
	dir := everythingProject(t, "hostpython")
	waitForStubs(t, dir)
	r := cli(t, dir, "", "exec", "-c", `import inspect
import tools.memory as m
print(inspect.signature(m.create_entities))
print(sorted(m.Entity.__required_keys__), m.Entity.__annotations__["observations"])
print(m.create_entities.call_async.__name__)
from tools.everything import get_tiny_image
parts = get_tiny_image()
img = [p for p in parts if type(p).__name__ == "Image"][0]
print(img.mime_type, img.data[:4])
import mcpruntime
try:
    mcpruntime.call_tool("everything", "no-such-tool")
except mcpruntime.ToolError as e:
    print(e.server, e.tool, e.code)`)
	want := []string{
		"(entities: list[tools.memory.Entity]) -> tools.memory.CreateEntitiesResult\n",
		"['entityType', 'name', 'observations'] list[str]\n",
		"_create_entities_async\n",
		"image/png b'\\x89PNG'\n",
		"everything no-such-tool unknown_tool\n",
	}
	if r.code != 0 {
		t.Fatalf("typed stubs: %+v", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("output lacks %q:\n%s\n%s", w, r.stdout, r.stderr)
		}
	}
}
