package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// The kernel runs inside the sandbox, so whatever it writes on the channel
// is sandbox code's: the Go side must take any byte stream without
// panicking, and end every execution with a result or an error.

// frameBytes encodes frames as a kernel would write them.
func frameBytes(frames ...string) []byte {
	var b bytes.Buffer
	for _, f := range frames {
		var head [4]byte
		binary.BigEndian.PutUint32(head[:], uint32(len(f)))
		b.Write(head[:])
		b.WriteString(f)
	}
	return b.Bytes()
}

func frameSeeds(f *testing.F) {
	f.Add(frameBytes(`{"type":"ready","pid":1}`))
	f.Add(frameBytes(`{"type":"out","id":1,"stream":"stdout","data":"hi\n"}`, `{"type":"result","id":1,"exit_code":0}`))
	f.Add(frameBytes(`{"type":"host_call","call":1,"method":"ask_llm","args":{"prompt":"x"}}`, `{"type":"result","id":1}`))
	f.Add(frameBytes(`{"type":"host_call","call":2,"method":"call_tool","args":[1,2]}`))
	f.Add(frameBytes(`{"type":"result","id":1,"kind":"memory","exception":{"type":"MemoryError"}}`))
	f.Add(frameBytes(`{"type":"result","id":"1"}`, `null`, `[]`, `{"type":`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 10, '{'})
	f.Add([]byte{})
}

func FuzzReadFrame(f *testing.F) {
	frameSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			m, err := ReadFrame(r)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("a rejection without a message")
				}
				return
			}
			if m == nil {
				t.Fatal("no frame and no error")
			}
		}
	})
}

type refusingHost struct{}

func (refusingHost) CallTool(context.Context, *sdk.ToolCall) (*sdk.ToolResult, error) {
	return &sdk.ToolResult{Result: json.RawMessage(`{"ok":true}`)}, nil
}

func (refusingHost) AskLLM(context.Context, *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return nil, errors.New("no model here")
}

func FuzzConnExec(f *testing.F) {
	frameSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewConn(bytes.NewReader(data), io.Discard)
		c.nextID = 0 // the seeds answer execution 1
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := c.Exec(ctx, Request{Code: "pass", Timeout: 20 * time.Millisecond}, refusingHost{}, func(sdk.Event) {})
		if res == nil && err == nil {
			t.Fatal("Exec returned neither a result nor an error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}

// blockingHost holds every call until release is closed, counting how many
// it holds at once.
type blockingHost struct {
	release chan struct{}
	held    chan struct{}
}

func (h blockingHost) CallTool(ctx context.Context, _ *sdk.ToolCall) (*sdk.ToolResult, error) {
	h.held <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return &sdk.ToolResult{Result: json.RawMessage(`1`)}, nil
}

func (h blockingHost) AskLLM(context.Context, *sdk.LLMRequest) (*sdk.LLMResponse, error) {
	return nil, errors.New("unused")
}

// A kernel asking for host calls without end gets MaxHostCalls of them at
// once; the rest are refused, not started.
func TestHostCallsBounded(t *testing.T) {
	const asked = 100
	var frames []string
	for i := range asked {
		b, _ := json.Marshal(map[string]any{"type": "host_call", "call": i + 1, "method": "call_tool",
			"args": map[string]any{"server": "s", "tool": "t"}})
		frames = append(frames, string(b))
	}
	kernelOut, toHost := io.Pipe()
	fromHost, kernelIn := io.Pipe()
	go io.Copy(io.Discard, fromHost)
	c := NewConn(kernelOut, kernelIn)
	c.nextID = 0 // the result frame below answers execution 1
	host := blockingHost{release: make(chan struct{}), held: make(chan struct{}, asked)}
	var refused atomic.Int32
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), Request{Code: "pass"}, host, func(e sdk.Event) {
			if e.Kind == sdk.EventHostCall && e.HostCall.Error != "" {
				refused.Add(1)
			}
		})
		done <- err
	}()
	if _, err := toHost.Write(frameBytes(frames...)); err != nil {
		t.Fatal(err)
	}
	// Once the bound is held and every other call refused, the Conn has
	// decided about every call; only then may held calls finish.
	deadline := time.Now().Add(30 * time.Second)
	for (len(host.held) < MaxHostCalls || refused.Load() < asked-MaxHostCalls) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := toHost.Write(frameBytes(`{"type":"result","id":1}`)); err != nil {
		t.Fatal(err)
	}
	close(host.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(host.held); got != MaxHostCalls {
		t.Errorf("the host made %d calls at once, want %d", got, MaxHostCalls)
	}
	if got := refused.Load(); got != asked-MaxHostCalls {
		t.Errorf("%d calls refused, want %d", got, asked-MaxHostCalls)
	}
}
