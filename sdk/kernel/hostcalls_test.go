package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// barrierHost answers a tool call only once n calls are in flight at the
// same time, so code that makes its calls one after another fails.
type barrierHost struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newBarrierHost(n int) *barrierHost { return &barrierHost{n: n, all: make(chan struct{})} }

func (h *barrierHost) CallTool(ctx context.Context, c *sdk.ToolCall) (*sdk.ToolResult, error) {
	h.mu.Lock()
	h.arrived++
	if h.arrived == h.n {
		close(h.all)
	}
	h.mu.Unlock()
	select {
	case <-h.all:
		return &sdk.ToolResult{Result: c.Arguments}, nil
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("only %d of %d calls overlapped", h.arrived, h.n)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *barrierHost) AskLLM(context.Context, *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return nil, errors.New("not here")
}

func TestKernelHostCallsOverlap(t *testing.T) {
	l := startPython(t)
	cases := map[string]string{
		"threads": `
import threading, mcpruntime
out = [None] * 3
def f(i):
    out[i] = mcpruntime.call_tool("s", "t", {"i": i})["i"]
ts = [threading.Thread(target=f, args=(i,)) for i in range(3)]
for t in ts: t.start()
for t in ts: t.join()
print(out)`,
		"asyncio": `
import asyncio, mcpruntime
async def main():
    rs = await asyncio.gather(*(mcpruntime.call_tool_async("s", "t", i=i) for i in range(3)))
    return [r["i"] for r in rs]
print(asyncio.run(main()))`,
		"asyncio with a sleeper": `
import asyncio, mcpruntime
async def sleeper():
    for _ in range(3):
        await asyncio.sleep(0.01)
    return "slept"
async def main():
    rs = await asyncio.gather(sleeper(), *(mcpruntime.call_tool_async("s", "t", i=i) for i in range(2)))
    return [rs[0]] + [r["i"] for r in rs[1:]]
print(asyncio.run(main()))`,
	}
	want := map[string]string{"threads": "[0, 1, 2]\n", "asyncio": "[0, 1, 2]\n", "asyncio with a sleeper": "['slept', 0, 1]\n"}
	for name, code := range cases {
		t.Run(name, func(t *testing.T) {
			n := 3
			if strings.Contains(name, "sleeper") {
				n = 2
			}
			res, out := run(t, l, code, sdk.Limits{}, newBarrierHost(n))
			if !res.OK() || out.stdout.String() != want[name] {
				t.Fatalf("res %+v stdout %q stderr %q", res, out.stdout.String(), out.stderr.String())
			}
		})
	}
	// The kernel still serves plain calls afterwards.
	res, out := run(t, l, "import mcpruntime\nprint(mcpruntime.call_tool('s', 't', a=1)['a'])", sdk.Limits{}, echoHost{})
	if !res.OK() || out.stdout.String() != "1\n" {
		t.Fatalf("after: %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
}

// richHost returns content parts, coded failures and records LLM requests.
type richHost struct {
	mu  sync.Mutex
	llm []sdk.LLMRequest
}

func (h *richHost) CallTool(_ context.Context, c *sdk.ToolCall) (*sdk.ToolResult, error) {
	switch c.Tool {
	case "picture":
		return &sdk.ToolResult{Result: json.RawMessage(`"a caption"`), Content: []sdk.ContentPart{
			{Type: sdk.ContentText, Text: "a caption"},
			{Type: sdk.ContentImage, Data: []byte{0x89, 'P', 'N', 'G', 0}, MIMEType: "image/png"},
			{Type: sdk.ContentAudio, Data: []byte{1, 2, 3}, MIMEType: "audio/wav"},
			{Type: sdk.ContentResource, URI: "file:///a.txt", MIMEType: "text/plain", Text: "inside"},
			{Type: sdk.ContentResource, URI: "file:///b.bin", Data: []byte{0, 255}},
		}}, nil
	case "reported":
		return &sdk.ToolResult{Result: json.RawMessage(`"bad input"`), IsError: true}, nil
	case "slow":
		return &sdk.ToolResult{Result: json.RawMessage(`"s.slow did not answer within 1s"`), IsError: true, Code: sdk.ToolErrorTimeout}, nil
	case "gone":
		return nil, &sdk.ToolError{Code: sdk.ToolErrorUnknownServer, Err: errors.New("no server x")}
	}
	return nil, errors.New("plain failure")
}

func (h *richHost) AskLLM(_ context.Context, r *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.llm = append(h.llm, *r)
	return &sdk.LLMResponse{Text: "ok"}, nil
}

func TestKernelToolResultsAndErrors(t *testing.T) {
	l := startPython(t)
	h := &richHost{}
	res, out := run(t, l, `
import mcpruntime
r = mcpruntime.call_tool("s", "picture")
print([type(p).__name__ for p in r])
print(r[0], r[1].data, r[1].mime_type, r[2].data, r[3].uri, r[3].text, r[4].data)
import pickle
print(pickle.loads(pickle.dumps(r)) == r)
for tool in ("reported", "slow", "gone", "other"):
    try:
        mcpruntime.call_tool("s", tool)
    except mcpruntime.ToolError as e:
        print(tool, e.server, e.tool, e.code, isinstance(e, mcpruntime.HostCallError), str(e))
`, sdk.Limits{}, h)
	want := `['str', 'Image', 'Audio', 'Resource', 'Resource']
a caption b'\x89PNG\x00' image/png b'\x01\x02\x03' file:///a.txt inside b'\x00\xff'
True
reported s reported tool_error True tool s.reported failed: bad input
slow s slow timeout True s.slow did not answer within 1s
gone s gone unknown_server True call_tool s.gone: no server x
other s other error True call_tool s.other: plain failure
`
	if !res.OK() || out.stdout.String() != want {
		t.Fatalf("res %+v\nstdout %s\nwant %s\nstderr %s", res, out.stdout.String(), want, out.stderr.String())
	}
	res, out = run(t, l, `print(ask_llm("p", context="the slice", recursive=True), ask_llm("q"))`, sdk.Limits{}, h)
	if !res.OK() || out.stdout.String() != "ok ok\n" {
		t.Fatalf("ask_llm: %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
	if len(h.llm) != 2 || h.llm[0].Context != "the slice" || !h.llm[0].Recursive || h.llm[1].Context != "" || h.llm[1].Recursive {
		t.Fatalf("LLM requests %+v", h.llm)
	}
}

func TestKernelSearchHelpers(t *testing.T) {
	l := startPython(t)
	res, out := run(t, l, `print(search_skills("csv"), search_tools("read", limit=3))`, sdk.Limits{}, echoHost{})
	if !res.OK() || out.stdout.String() != "{'query': 'csv', 'limit': 10} {'query': 'read', 'limit': 3}\n" {
		t.Fatalf("res %+v %q %q", res, out.stdout.String(), out.stderr.String())
	}
	if len(out.calls) != 2 || out.calls[0].Detail != "mcpruntime.search_skills" || out.calls[1].Detail != "mcpruntime.search_tools" {
		t.Fatalf("notices %+v", out.calls)
	}
}
