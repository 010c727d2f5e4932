package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
	"github.com/mcpruntime/mcpruntime/core/replay"
)

// consoleFixture is `mcpruntime serve` on loopback with the console, a
// scripted model and a saved skill, as the console and API tests use it.
type consoleFixture struct {
	*runsServer
	llm *llmtest.Server
	ws  string
}

// agentScript is a run of two steps that change the workspace, then an
// answer. The second reply comes after a pause, so the first step is on
// screen while the run is still going.
func agentScript() []llmtest.Reply {
	return []llmtest.Reply{
		{Content: "First the notes.\n```python\nx = 41\nopen('notes.txt', 'w').write('alpha\\nbeta\\n')\nprint('step one')\n```"},
		{Content: "Now change them.\n```python\nx = 42\nopen('notes.txt', 'w').write('alpha\\ngamma\\n')\nopen('new.txt', 'w').write('fresh\\n')\nprint('step two')\nfrom IPython.display import display, HTML\ndisplay(HTML('<i>two notes</i>'))\n```", Delay: 1500 * time.Millisecond},
		{Content: "x is 42 and the notes say alpha, gamma."},
	}
}

const seedSkill = "greet"

func startConsoleFixture(t *testing.T, script []llmtest.Reply, seed func(ws string)) *consoleFixture {
	t.Helper()
	llm := llmtest.New(script...)
	t.Cleanup(llm.Close)
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf(`server {
  listen = %q
}
llm {
  base_url = %q
}
agent {
  max_steps = 5
}
replay {
  keep     = "0"
  max_size = "0"
}
`, addr, llm.BaseURL()))
	ws := filepath.Join(dir, "workspace")
	writeSkill(t, filepath.Join(dir, "skills"))
	if seed != nil {
		if err := os.MkdirAll(ws, 0o755); err != nil {
			t.Fatal(err)
		}
		seed(ws)
	}
	return &consoleFixture{runsServer: startRunsServer(t, dir, addr), llm: llm, ws: ws}
}

// writeSkill saves one skill the way the registry does (index + module).
func writeSkill(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "def run(name: str) -> str:\n    \"\"\"Greet someone.\"\"\"\n    return 'hello ' + name\n"
	index := fmt.Sprintf(`{"skills":[{"name":%q,"signature":"run(name: str) -> str","description":"Greet someone.","file":"greet.py","hash":"h","version":1,"created":%q}]}`,
		seedSkill, time.Now().UTC().Format(time.RFC3339))
	for name, body := range map[string]string{"index.json": index, "greet.py": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seedReplay writes n recorded sessions of one step and one session
// ("big") of steps steps straight into the replay store, as a busy
// workspace has them.
func seedReplay(t *testing.T, ws string, n, steps int) {
	t.Helper()
	now := time.Now().UTC().Add(-time.Hour)
	entry := func(id string, step int, code string) *replay.Entry {
		return &replay.Entry{Step: step, Time: now.Add(time.Duration(step) * time.Second), Session: id, Code: code,
			Stdout: fmt.Sprintf("out %d\n", step), OK: step%17 != 0, Exit: map[bool]int{true: 0, false: 1}[step%17 != 0],
			DurationMs: float64(5 + step%40), Backend: "hostpython", Task: "seeded"}
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("seed-%04d", i)
		l, err := replay.OpenLog(ws, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(entry(id, 1, "print(1)")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := replay.OpenLog(ws, "big")
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= steps; s++ {
		if err := l.Append(entry("big", s, strings.Repeat(fmt.Sprintf("y%d = %d\n", s, s), 3))); err != nil {
			t.Fatal(err)
		}
	}
}
