package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

// The Recursive Language Model pattern: a 5 MB input lives in the session
// as `context`, never in a request to the model; code hands slices to
// ask_llm, and a recursive call runs a sub-agent whose own recursive call
// past agent.max_depth is refused.
func TestRunContextStaysOutOfThePrompt(t *testing.T) {
	const size = 5 << 20
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		switch b.Len() / (1 << 20) {
		case 1:
			if !strings.Contains(b.String()[1<<20-200:], "FIND-ME") && b.Len() > 1<<20 {
				b.WriteString("FIND-ME: the code word is ZEBRA.\n")
			}
		case 2:
			if b.Len() > 5<<19 && !strings.Contains(b.String()[5<<19-200:], "MIDDLE-MARKER") {
				b.WriteString("MIDDLE-MARKER\n")
			}
		}
		fmt.Fprintf(&b, "line %07d: filler text that nobody needs to read\n", i)
	}
	data := b.String()[:size]
	if !strings.Contains(data, "FIND-ME") || !strings.Contains(data, "MIDDLE-MARKER") {
		t.Fatal("test input lacks its markers")
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(input, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	root := "```python\nprint(len(context))\ni = context.index('FIND-ME')\n" +
		"print('sub:', ask_llm('What is the code word?', context=context[i:i+40]))\n" +
		"print('deep:', ask_llm('Find the code word', context=context[i:i+40], recursive=True))\n```"
	sub := "```python\nprint('sub-agent context', len(context))\ntry:\n    ask_llm('deeper', context=context, recursive=True)\n" +
		"except Exception as e:\n    print('refused:', e)\n```"
	srv := llmtest.New(
		llmtest.Reply{Content: root},
		llmtest.Reply{Content: "WORD-A"},
		llmtest.Reply{Content: sub},
		llmtest.Reply{Content: "SUB-ANSWER"},
		llmtest.Reply{Content: "The code word is ZEBRA."},
	)
	defer srv.Close()
	proj := project(t, "llm {\n  base_url = \""+srv.BaseURL()+"\"\n}\nagent {\n  max_depth = 1\n}\n")
	r := cli(t, proj, "", "run", "--quiet", "--context", input, "What is the code word in the input?")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "The code word is ZEBRA." {
		t.Fatalf("run: %+v", r)
	}
	reqs := srv.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests to the model, want 5", len(reqs))
	}
	for i, req := range reqs {
		n := 0
		for _, m := range req.Messages {
			n += len(m.Content)
			if strings.Contains(m.Content, "MIDDLE-MARKER") {
				t.Fatalf("request %d carries the input's middle: the input reached the model", i+1)
			}
		}
		if n > 64<<10 {
			t.Fatalf("request %d is %d bytes", i+1, n)
		}
	}
	first := reqs[0].Messages[len(reqs[0].Messages)-1].Content
	if !strings.Contains(first, fmt.Sprintf("a str of %d characters", size)) || !strings.Contains(first, "line 0000000") {
		t.Fatalf("the task message does not describe the input with its size and preview:\n%s", first)
	}
	if ask := reqs[1].Messages[len(reqs[1].Messages)-1].Content; !strings.Contains(ask, "<context>\nFIND-ME: the code word is ZEBRA") {
		t.Fatalf("ask_llm's context is not in its prompt: %q", ask)
	}
	subObs := reqs[3].Messages[len(reqs[3].Messages)-1].Content
	if !strings.Contains(subObs, "sub-agent context 40") || !strings.Contains(subObs, "refused:") || !strings.Contains(subObs, "depth limit") {
		t.Fatalf("the sub-agent's recursive call past max_depth was not refused clearly:\n%s", subObs)
	}
	final := reqs[4].Messages[len(reqs[4].Messages)-1].Content
	for _, want := range []string{fmt.Sprint(size), "sub: WORD-A", "deep: SUB-ANSWER"} {
		if !strings.Contains(final, want) {
			t.Fatalf("the root's observation lacks %q:\n%s", want, final)
		}
	}
}

// POST /v1/runs {"context": ...}: the same, over HTTP.
func TestHTTPRunContext(t *testing.T) {
	input := strings.Repeat("filler line that the model never reads\n", 50000) + "HIDDEN-TAIL-MARKER\n"
	llm := llmtest.New(
		llmtest.Reply{Content: "```python\nprint(len(context), context.endswith('-TAIL-MARKER\\n'))\n```"},
		llmtest.Reply{Content: "found it"},
	)
	defer llm.Close()
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n}\nllm {\n  base_url = %q\n}\n", addr, llm.BaseURL()))
	srv := startRunsServer(t, dir, addr)
	var run apiRun
	if code := srv.do("POST", "/v1/runs", map[string]any{"task": "what is the last line?", "context": input}, &run); code != 202 {
		t.Fatalf("start: %d %+v", code, run)
	}
	done := srv.waitRun(run.ID, "finished", func(r apiRun) bool { return r.Status == "done" || r.Status == "failed" })
	if done.Status != "done" || len(done.Steps) != 1 || done.Steps[0].Stdout != fmt.Sprintf("%d True\n", len(input)) {
		t.Fatalf("run: %+v", done)
	}
	for i, req := range llm.Requests() {
		for _, m := range req.Messages {
			if strings.Contains(m.Content, "HIDDEN-TAIL-MARKER") {
				t.Fatalf("request %d carries the input's tail", i+1)
			}
		}
	}
}
