package config

import (
	"strings"
	"testing"
	"time"
)

func TestMCPServeBlock(t *testing.T) {
	c, err := parse(t, "mcp_serve {\n  max_concurrent = 12\n  output_limit = \"128KiB\"\n  progress_interval = \"250ms\"\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if m := c.MCPServe; m.MaxConcurrent != 12 || m.OutputLimit != 128<<10 || m.ProgressInterval != 250*time.Millisecond {
		t.Fatalf("mcp_serve %+v", m)
	}
	if c, err = parse(t, "runtime {}\n"); err != nil || c.MCPServe != (MCPServe{}) {
		t.Fatalf("defaults: %+v %v", c.MCPServe, err)
	}
	for src, want := range map[string]string{
		"mcp_serve {\n  max_concurrent = 0\n}\n":        "mcp_serve.max_concurrent must be at least 1",
		"mcp_serve {\n  output_limit = \"100B\"\n}\n":   "at least 1KiB",
		"mcp_serve {\n  progress_interval = \"x\"\n}\n": "Invalid duration",
	} {
		if _, err := parse(t, src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}
