package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// scripted is a model that answers from a script and records what it saw.
type scripted struct {
	mu      sync.Mutex
	replies []string
	seen    [][]llm.Message
}

func (s *scripted) Chat(_ context.Context, msgs []llm.Message, _ ...llm.Option) (*llm.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, append([]llm.Message(nil), msgs...))
	if len(s.replies) == 0 {
		return nil, fmt.Errorf("script exhausted")
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	return &llm.Response{Content: r}, nil
}

// hostpythonManager is a session manager on the hostpython example plugin.
func hostpythonManager(t *testing.T) *session.Manager {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	out, err := exec.Command("go", "build", "-o", filepath.Join(plugins, sdk.BinaryPrefix+"hostpython"), "../../examples/plugins/hostpython").CombinedOutput()
	if err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	cfg, err := config.Parse([]byte("runtime {\n  backend = \"hostpython\"\n  plugin_dir = \""+plugins+"\"\n}\n"), filepath.Join(dir, "runtime.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.Workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	m := session.New(cfg, pluginhost.New(cfg, nil), nil, nil)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m
}

// A resumed run shows the model the conversation it had, runs the blocks
// of a reply that the interruption left unrun, numbers its turns and steps
// after the history's, and counts the history against MaxSteps.
func TestRunResumesHistory(t *testing.T) {
	m := hostpythonManager(t)
	turn1 := "```python\nprint('one')\n```"
	turn2 := "Two blocks.\n```python\nprint('two')\n```\n```python\nprint('three')\n```"
	history := []Turn{
		{N: 1, Reply: turn1, Steps: []*Step{{N: 1, Code: "print('one')\n", Stdout: "one\n", Result: &sdk.ExecResult{}}}},
		// The run stopped after the first of turn 2's blocks.
		{N: 2, Reply: turn2, Steps: []*Step{{N: 2, Code: "print('two')\n", Stdout: "two\n", Result: &sdk.ExecResult{}}}},
	}
	model := &scripted{replies: []string{"```python\nprint('four')\n```", "```python\nprint('five')\n```"}}
	type rec struct {
		turn int
		what string
	}
	var recorded []rec
	res, err := Run(context.Background(), m, model, "count", Options{
		SessionID: "resumed", MaxSteps: 3, History: history,
		OnReply: func(_ context.Context, turn int, reply string) error {
			recorded = append(recorded, rec{turn, "reply " + reply})
			return nil
		},
		OnStep: func(_ context.Context, turn int, st *Step) error {
			recorded = append(recorded, rec{turn, fmt.Sprintf("step %d %q", st.N, st.Stdout)})
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{2, `step 3 "three\n"`}, {3, "reply ```python\nprint('four')\n```"}, {3, `step 4 "four\n"`}}
	if fmt.Sprint(recorded) != fmt.Sprint(want) {
		t.Fatalf("recorded\n%v\nwant\n%v", recorded, want)
	}
	// Turn 3 is the third code reply: the fifth reply exceeds MaxSteps.
	if res.Success || !strings.Contains(res.Error, "stopped after 3 steps") || len(res.Steps) != 4 || res.Session != "resumed" || res.Replies != 4 {
		t.Fatalf("result %+v", res)
	}
	first := model.seen[0]
	roles := make([]string, len(first))
	for i, msg := range first {
		roles[i] = msg.Role
	}
	if strings.Join(roles, " ") != "system user assistant user assistant user" {
		t.Fatalf("history roles %v", roles)
	}
	if first[1].Content != "count" || first[2].Content != turn1 || first[4].Content != turn2 {
		t.Fatalf("history %+v", first)
	}
	if first[3].Content != observation(history[0].Steps[0], false, 16<<10) {
		t.Fatalf("turn 1's observation %q", first[3].Content)
	}
	// Turn 2's observation holds the step from before the interruption and
	// the one run now, numbered as one reply's blocks.
	if obs := first[5].Content; !strings.Contains(obs, "Block 2:\nObservation:\nstdout:\ntwo\n") || !strings.Contains(obs, "Block 3:\nObservation:\nstdout:\nthree\n") {
		t.Fatalf("turn 2's observation %q", obs)
	}
}
