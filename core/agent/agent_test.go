package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func TestCodeBlocks(t *testing.T) {
	reply := "Plan.\n```python\nx = 1\n```\ntext\n```py\nprint(x)\n```\n```bash\nls\n```\n```python\n   \n```\n```\nnot python\n```"
	got := CodeBlocks(reply)
	if len(got) != 2 || got[0] != "x = 1\n" || got[1] != "print(x)\n" {
		t.Fatalf("blocks %q", got)
	}
	if len(CodeBlocks("The answer is 42.")) != 0 {
		t.Fatal("plain text has no code")
	}
	// A block that never closes is not code to run.
	if len(CodeBlocks("```python\nwhile True: pass")) != 0 {
		t.Fatal("unterminated block ran")
	}
}

// An unlabelled block runs when it looks like Python; output, prose or a
// shell command in one does not.
func TestBareBlocks(t *testing.T) {
	for _, code := range []string{"import math\nprint(math.pi)\n", "# sum\nx = [1, 2]\nprint(sum(x))\n", "def f(a):\n    return a\n", "print('hi')\n", "total += 1\n"} {
		if got := CodeBlocks("```\n" + code + "```"); len(got) != 1 || got[0] != code {
			t.Errorf("bare block %q: %q", code, got)
		}
	}
	for _, text := range []string{"42\n", "not python\n", "ls -la\n", "$ pip install numpy\n", "The mean is 50.5\n", "{\"a\": 1}\n"} {
		if got := CodeBlocks("The answer:\n```\n" + text + "```"); len(got) != 0 {
			t.Errorf("bare block %q ran: %q", text, got)
		}
	}
	if p := parseReply("```\n\n```"); p.empty != 1 || len(p.code) != 0 {
		t.Errorf("empty bare block %+v", p)
	}
	if p := parseReply("```python\n```"); p.empty != 1 || len(p.code) != 0 {
		t.Errorf("empty python block %+v", p)
	}
}

func TestObservationTruncates(t *testing.T) {
	step := &Step{N: 2, Stdout: strings.Repeat("a", 100), Result: &sdk.ExecResult{}}
	obs := observation(step, true, 30)
	if !strings.Contains(obs, "Block 2:") || !strings.Contains(obs, "\n[... 70 bytes elided ...]\n") {
		t.Fatalf("observation %q", obs)
	}
	step = &Step{N: 1, Stderr: "Traceback", Result: &sdk.ExecResult{ExitCode: 1, Error: sdk.ErrorException, Message: "ZeroDivisionError: division by zero"}}
	if obs := observation(step, false, 100); !strings.Contains(obs, "error (exit 1): ZeroDivisionError") {
		t.Fatalf("error observation %q", obs)
	}
	if obs := observation(&Step{Result: &sdk.ExecResult{}}, false, 100); !strings.Contains(obs, "(no output)") {
		t.Fatalf("silent step %q", obs)
	}
}

// A 100 KB output keeps its first and its last lines (the result, the
// traceback), cut on line boundaries, within about the limit.
func TestObservationKeepsHeadAndTail(t *testing.T) {
	var b strings.Builder
	b.WriteString("header line\n")
	for i := 0; b.Len() < 100<<10; i++ {
		b.WriteString("row ")
		b.WriteString(strings.Repeat("x", 60))
		b.WriteString("\n")
	}
	b.WriteString("RESULT = 42\n")
	out := b.String()
	got := clip(out, 16<<10)
	if !strings.HasPrefix(got, "header line\n") || !strings.HasSuffix(got, "RESULT = 42\n") {
		t.Fatalf("head or tail lost: %q ... %q", got[:40], got[len(got)-40:])
	}
	if len(got) > 16<<10+64 || !strings.Contains(got, " bytes elided ...]\n") {
		t.Fatalf("clipped to %d bytes", len(got))
	}
	i := strings.Index(got, "[... ")
	j := strings.Index(got, " bytes elided")
	if got[i-1] != '\n' || !strings.HasPrefix(got[j+len(" bytes elided ...]\n"):], "row ") {
		t.Fatalf("cut inside a line: %q", got[i-70:j+80])
	}
	// Multi-byte text is never cut inside a character.
	if c := clip(strings.Repeat("é", 1000), 101); !strings.Contains(c, "elided") || strings.ContainsRune(c, '\uFFFD') {
		t.Fatalf("utf-8 cut: %q", c)
	}
}

// An empty code block is neither code nor the answer: the model is told,
// and its next reply continues the run.
func TestEmptyBlockIsNotTheAnswer(t *testing.T) {
	m := hostpythonManager(t)
	model := &scripted{replies: []string{"```python\n```", "```\nprint(6 * 7)\n```", "The answer is 42."}}
	var events []string
	res, err := Run(context.Background(), m, model, "six times seven", Options{OnEvent: func(e Event) { events = append(events, e.Kind) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.Answer != "The answer is 42." || len(res.Steps) != 1 || res.Steps[0].Stdout != "42\n" {
		t.Fatalf("result %+v", res)
	}
	second := model.seen[1]
	if last := second[len(second)-1]; last.Role != "user" || !strings.Contains(last.Content, "empty code block") {
		t.Fatalf("the model was not told of its empty block: %+v", last)
	}
	if got := strings.Join(events, " "); got != "step_started output step_done answer" {
		t.Fatalf("events %s", got)
	}
}
