package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// runtime.hcl may come from anywhere a user copies it from: loading must
// never panic, and every refusal must say where and why.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"runtime {\n  backend = \"wasm\"\n}\n",
		"sandbox \"wasm\" {\n  limits {\n    timeout = \"30s\"\n    memory = \"512MiB\"\n  }\n  pass_env = [\"A\"]\n}\n",
		"server {\n  listen = \"127.0.0.1:7878\"\n  token = env(\"T\")\n}\n",
		"mcp_server \"x\" {\n  command = [\"a\", \"b\"]\n  env = { A = \"1\" }\n}\n",
		"agent { max_steps = -1 }\n",
		"sandbox \"a\" {}\nsandbox \"a\" {}\n",
		"runtime { workspace = \"${upper(\"x\")}\" }",
		"limits { timeout = 1e400 }",
		"runtime {\n  daemon_idle_timeout = \"-5s\"\n}\n",
		"\x00\xff{",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, filepath.Join(dir, "runtime.hcl"))
		if err != nil {
			if !strings.Contains(err.Error(), "runtime.hcl") {
				t.Fatalf("a refusal that does not point into the file: %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("no configuration and no error")
		}
	})
}
