package mcp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testmcpBin is the test MCP server (core/internal/testmcp), built once.
var testmcpBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpruntime-mcp-test-")
	if err != nil {
		panic(err)
	}
	testmcpBin = filepath.Join(dir, "testmcp")
	if out, err := exec.Command("go", "build", "-o", testmcpBin, "../internal/testmcp").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build testmcp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
