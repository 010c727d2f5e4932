package agent

import (
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

func TestObservationTruncates(t *testing.T) {
	step := &Step{N: 2, Stdout: strings.Repeat("a", 100), Result: &sdk.ExecResult{}}
	obs := observation(step, true, 10)
	if !strings.Contains(obs, "Block 2:") || !strings.Contains(obs, "aaaaaaaaaa\n[... 90 more bytes truncated ...]") {
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
