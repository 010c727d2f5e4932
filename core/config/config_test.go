package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

func parse(t *testing.T, src string) (*Config, error) {
	t.Helper()
	return Parse([]byte(src), "/cfg/runtime.hcl")
}

func TestParseFull(t *testing.T) {
	t.Setenv("MY_TOKEN", "s3cret-s3cret-s3cret")
	t.Setenv("OPENAI_BASE_URL", "")
	c, err := parse(t, `
runtime {
  backend   = "hostpython"
  workspace = "./ws"
}
sandbox "hostpython" {
  pool   { size = 2 }
  limits {
    timeout = "5s"
    memory  = "256MiB"
    output  = "64KiB"
  }
  config { python = "python3" }
}
server { token = env("MY_TOKEN") }
skills { auto_save = false }
`)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sandbox("hostpython")
	if c.Backend != "hostpython" || c.Workspace != "/cfg/ws" || s.PoolSize != 2 ||
		s.Limits.Timeout != 5*time.Second || s.Limits.MemoryBytes != 256<<20 || s.Limits.OutputBytes != 64<<10 {
		t.Fatalf("decoded %+v / %+v", c, s)
	}
	if c.Server.Token != "s3cret-s3cret-s3cret" || c.Skills.AutoSave || c.Skills.Dir != "/cfg/skills" {
		t.Fatalf("server/skills %+v %+v", c.Server, c.Skills)
	}
	js, err := c.PluginConfig(s, &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "python", Type: sdk.TypeString}, {Name: "pool_warm", Type: sdk.TypeBool, Default: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(js, &got)
	if got["python"] != "python3" || got["pool_warm"] != true {
		t.Fatalf("plugin config %s", js)
	}
}

func TestErrorsPointAtSource(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"syntax":        {"runtime {\n  backend = \n}\n", "runtime.hcl:2:"},
		"unknown attr":  {"runtime {\n  backnd = \"wasm\"\n}\n", "runtime.hcl:2:3: Unsupported argument"},
		"bad duration":  {"sandbox \"x\" {\n  limits {\n    timeout = \"soon\"\n  }\n}\n", "runtime.hcl:3:15: Invalid duration"},
		"bad size":      {"sandbox \"x\" {\n  limits { memory = \"lots\" }\n}\n", "runtime.hcl:2:21: Invalid size"},
		"duplicate":     {"sandbox \"x\" {}\nsandbox \"x\" {}\n", "Duplicate sandbox block"},
		"unknown block": {"sandboxes \"x\" {}\n", "runtime.hcl:1:1: Unsupported block type"},
	}
	for name, tc := range cases {
		_, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
}

func TestPluginConfigErrors(t *testing.T) {
	c, err := parse(t, "sandbox \"p\" {\n  config {\n    pythn = \"x\"\n  }\n}\nsandbox \"q\" {\n  config {\n    grace = \"fast\"\n  }\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	spec := &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{{Name: "python", Type: sdk.TypeString}, {Name: "grace", Type: sdk.TypeDuration}}}
	_, err = c.PluginConfig(c.Sandbox("p"), spec)
	if err == nil || !strings.Contains(err.Error(), "runtime.hcl:3:5: ") || !strings.Contains(err.Error(), "Unsupported argument") {
		t.Fatalf("unknown plugin attribute: %v", err)
	}
	_, err = c.PluginConfig(c.Sandbox("q"), spec)
	if err == nil || !strings.Contains(err.Error(), "runtime.hcl:8:13: Invalid duration") {
		t.Fatalf("bad plugin duration: %v", err)
	}
	// A backend without a block gets the spec's defaults.
	js, err := c.PluginConfig(c.Sandbox("none"), &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{{Name: "python", Type: sdk.TypeString, Default: "python3"}}})
	if err != nil || string(js) != `{"python":"python3"}` {
		t.Fatalf("defaults: %s %v", js, err)
	}
}

func TestMissingFileMeansDefaults(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	c, err := Load(filepath.Join(dir, "runtime.hcl"), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != DefaultBackend || c.Sandbox("wasm").Limits.Timeout != DefaultTimeout || c.Path != "" {
		t.Fatalf("defaults %+v", c)
	}
	if _, err := Load(filepath.Join(dir, "runtime.hcl"), false); err == nil {
		t.Fatal("an explicitly named missing file must be an error")
	}
}

func TestEnvOverridesLLM(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
	t.Setenv("MCPRUNTIME_MODEL", "tiny")
	c, err := parse(t, "llm {\n  base_url = \"http://x/v1\"\n  model = \"big\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.BaseURL != "http://127.0.0.1:9/v1" || c.LLM.Model != "tiny" {
		t.Fatalf("llm %+v", c.LLM)
	}
}

// The runtime's own files stay out of the workspace, which sandbox code can
// write: by default the state dir sits beside runtime.hcl, and a layout
// that puts state, skills, plugins or the configuration inside the
// workspace is refused with the reason.
func TestRuntimeFilesStayOutOfTheWorkspace(t *testing.T) {
	c, err := parse(t, `runtime { backend = "wasm" }`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Workspace != "/cfg/workspace" || c.StateDir != "/cfg/.mcpruntime" {
		t.Fatalf("workspace %s, state dir %s; want /cfg/workspace and /cfg/.mcpruntime", c.Workspace, c.StateDir)
	}
	for _, tc := range []struct{ src, what string }{
		{`runtime { state_dir = "./workspace/.mcpruntime" }`, "state_dir"},
		{`skills { dir = "./workspace/skills" }`, "skills dir"},
		{`runtime { plugin_dir = "./workspace/bin" }`, "plugin_dir"},
		{`runtime { workspace = "." }`, "configuration file"},
		{`runtime { workspace = "/" }`, "state_dir"},
	} {
		_, err := parse(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), "inside the workspace") || !strings.Contains(err.Error(), tc.what) {
			t.Errorf("%s: %v, want an error naming %s inside the workspace", tc.src, err, tc.what)
		}
	}
	// A symlink into the workspace is inside it too.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ws", "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "ws", "state"), filepath.Join(dir, "state-link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(`runtime {
  workspace = "./ws"
  state_dir = "./state-link"
}`), filepath.Join(dir, "runtime.hcl")); err == nil || !strings.Contains(err.Error(), "inside the workspace") {
		t.Errorf("state dir through a symlink into the workspace: %v, want refused", err)
	}
}
