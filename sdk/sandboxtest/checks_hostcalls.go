package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// suiteServer is the MCP server name whose tools the suite's Host answers
// itself (see suiteTool).
const suiteServer = "conformance"

// meeting is a rendezvous of calls: none answers before n have arrived.
type meeting struct {
	n       int
	arrived int
	all     chan struct{}
}

// suiteTool answers the tools of suiteServer: "meet" (arguments group, n)
// answers once n calls of its group are in flight at the same time, which
// calls made one after another never are; "picture" returns content parts;
// "broken" fails with a code.
func (s *Suite) suiteTool(ctx context.Context, c *sdk.ToolCall) (*sdk.ToolResult, error) {
	switch c.Tool {
	case "meet":
		var args struct {
			Group string `json:"group"`
			N     int    `json:"n"`
		}
		if err := json.Unmarshal(c.Arguments, &args); err != nil {
			return nil, fmt.Errorf("meet: %w", err)
		}
		return s.rendezvous(ctx, args.Group, args.N, c.Arguments)
	case "picture":
		return &sdk.ToolResult{Result: json.RawMessage(`"caption"`), Content: []sdk.ContentPart{
			{Type: sdk.ContentText, Text: "caption"},
			{Type: sdk.ContentImage, Data: []byte{0x89, 'P', 'N', 'G', 0, 255}, MIMEType: "image/png"},
			{Type: sdk.ContentResource, URI: "file:///r.bin", Data: []byte{1, 2}},
		}}, nil
	case "broken":
		return nil, &sdk.ToolError{Code: sdk.ToolErrorUnavailable, Err: errors.New("the server could not start")}
	}
	return nil, &sdk.ToolError{Code: sdk.ToolErrorUnknownTool, Err: fmt.Errorf("no tool %q", c.Tool)}
}

// rendezvousWait bounds how long a call waits for the others of its group.
const rendezvousWait = 20 * time.Second

func (s *Suite) rendezvous(ctx context.Context, group string, n int, result json.RawMessage) (*sdk.ToolResult, error) {
	s.mu.Lock()
	if s.meetings == nil {
		s.meetings = map[string]*meeting{}
	}
	m := s.meetings[group]
	if m == nil {
		m = &meeting{n: n, all: make(chan struct{})}
		s.meetings[group] = m
	}
	m.arrived++
	if m.arrived == m.n {
		close(m.all)
	}
	s.mu.Unlock()
	t := time.NewTimer(rendezvousWait)
	defer t.Stop()
	select {
	case <-m.all:
		return &sdk.ToolResult{Result: result}, nil
	case <-t.C:
		s.mu.Lock()
		got := m.arrived
		s.mu.Unlock()
		return nil, fmt.Errorf("host calls did not overlap: %d of %d in flight after %s", got, n, rendezvousWait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// concurrentCalls makes three calls at once through asyncio and, where the
// sandbox has threads, through threads; each call waits for the other two.
const concurrentCalls = `
import asyncio, mcpruntime
async def main():
    rs = await asyncio.gather(*(mcpruntime.call_tool_async("conformance", "meet", group="%[1]s-async", n=3, i=i) for i in range(3)))
    return [r["i"] for r in rs]
print(asyncio.run(main()))
try:
    import threading
    threading.Thread(target=int).start()
except Exception:
    print([0, 1, 2])  # no threads in this sandbox
else:
    out = [None] * 3
    def call(i):
        out[i] = mcpruntime.call_tool("conformance", "meet", group="%[1]s-threads", n=3, i=i)["i"]
    ts = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(out)
`

func checkHostCallsConcurrent(s *Suite) error {
	if !s.Info.Capabilities.HostCalls {
		return skip("plugin does not declare host calls")
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	return s.expectOK(bg(), id, fmt.Sprintf(concurrentCalls, id), "[0, 1, 2]\n[0, 1, 2]\n")
}

const resultsCode = `
import mcpruntime
r = mcpruntime.call_tool("conformance", "picture")
print([type(p).__name__ for p in r], r[1].data, r[1].mime_type, r[2].uri, r[2].data)
try:
    mcpruntime.call_tool("conformance", "broken")
except mcpruntime.ToolError as e:
    print(e.server, e.tool, e.code)
`

func checkHostCallResults(s *Suite) error {
	if !s.Info.Capabilities.HostCalls {
		return skip("plugin does not declare host calls")
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	return s.expectOK(bg(), id, resultsCode,
		"['str', 'Image', 'Resource'] b'\\x89PNG\\x00\\xff' image/png file:///r.bin b'\\x01\\x02'\nconformance broken unavailable\n")
}
