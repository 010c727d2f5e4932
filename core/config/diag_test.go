package config

import (
	"strings"
	"testing"
	"time"
)

// TestEveryErrorOfAFileAtOnce: the decoder's type errors and the checks'
// errors of one file come in one report, in the order of the file.
func TestEveryErrorOfAFileAtOnce(t *testing.T) {
	_, err := parse(t, `sandbox "hostpython" {
  pool {
    size = "x"
  }
  limits {
    cpus    = "y"
    timeout = "soon"
  }
}
agent {
  max_steps = "q"
}
`)
	if err == nil {
		t.Fatal("parsed")
	}
	msg, last := err.Error(), -1
	for _, pos := range []string{"runtime.hcl:3:13:", "runtime.hcl:6:16:", "runtime.hcl:7:15: Invalid duration", "runtime.hcl:11:16:"} {
		i := strings.Index(msg, pos)
		if i < 0 || i < last {
			t.Fatalf("error %q is missing %q or out of order", msg, pos)
		}
		last = i
	}
}

// TestUnsetEnvIsExplained: a setting that needs a value, given an env() of
// an unset variable, is an error at its place saying the variable is not
// set; an optional one (the server token) stays empty.
func TestUnsetEnvIsExplained(t *testing.T) {
	cases := map[string]string{
		"runtime {\n  backend = env(\"MCPRT_UNSET_FOR_TEST\")\n}\n":                   "runtime.hcl:2:13: Empty backend",
		"sandbox \"x\" {\n  plugin = env(\"MCPRT_UNSET_FOR_TEST\")\n}\n":              "runtime.hcl:2:12: Empty plugin",
		"runtime {\n  state_dir = env(\"MCPRT_UNSET_FOR_TEST\")\n}\n":                 "runtime.hcl:2:15: Empty state_dir",
		"llm {\n  timeout = env(\"MCPRT_UNSET_FOR_TEST\")\n}\n":                       "runtime.hcl:2:13: Invalid duration",
		"mcp_server \"m\" {\n  command = [env(\"MCPRT_UNSET_FOR_TEST\"), \"x\"]\n}\n": "runtime.hcl:2:13: Empty command",
	}
	for src, want := range cases {
		_, err := parse(t, src)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(flat(err), "MCPRT_UNSET_FOR_TEST is not set in the environment") {
			t.Errorf("%s: %v, want %q explaining the unset variable", src, err, want)
		}
	}
	c, err := parse(t, "server {\n  token = env(\"MCPRT_UNSET_FOR_TEST\")\n}\n")
	if err != nil || c.Server.Token != "" {
		t.Fatalf("unset optional token: %v", err)
	}
}

// TestCheckBackend: a backend no plugin provides is an error at its place
// in the file, suggesting the nearest name and listing those there are.
func TestCheckBackend(t *testing.T) {
	c, err := parse(t, "runtime {\n  backend = \"wsam\"\n}\nsandbox \"custom\" {\n  plugin = \"/opt/custom\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckBackend([]string{"hostpython", "wasm"})
	if err == nil {
		t.Fatal("unknown backend passed")
	}
	for _, want := range []string{"runtime.hcl:2:13: Unknown backend", `Did you mean "wasm"?`, "Available: custom, hostpython, wasm."} {
		if !strings.Contains(flat(err), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	for src, available := range map[string][]string{
		"runtime {\n  backend = \"wasm\"\n}\n":                                               {"wasm"},
		"runtime {\n  backend = \"custom\"\n}\nsandbox \"custom\" {\n  plugin = \"/x\"\n}\n": {"wasm"},
		"runtime {\n  backend = \"wasm\"\n}\n ":                                              nil, // nothing built yet
		"skills {\n  auto_save = false\n}\n":                                                 {"hostpython"},
	} {
		c, err := parse(t, src)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckBackend(available); err != nil {
			t.Errorf("%q with %v: %v", src, available, err)
		}
	}
}

// TestLLMDeadline: the llm block's deadline, its default, and a default
// that leaves room for one attempt longer than it.
func TestLLMDeadline(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "")
	for src, want := range map[string]time.Duration{
		"llm {\n  deadline = \"45s\"\n}\n":  45 * time.Second,
		"skills {\n  auto_save = true\n}\n": DefaultLLMDeadline,
		"llm {\n  timeout = \"10m\"\n}\n":   10 * time.Minute,
	} {
		c, err := parse(t, src)
		if err != nil || c.LLM.Deadline != want {
			t.Errorf("%q: deadline %v (%v), want %v", src, c.LLM.Deadline, err, want)
		}
	}
	if _, err := parse(t, "llm {\n  deadline = \"soon\"\n}\n"); err == nil || !strings.Contains(err.Error(), "runtime.hcl:2:14: Invalid duration") {
		t.Errorf("bad deadline: %v", err)
	}
}

// flat is err's message with its line wrapping undone.
func flat(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
