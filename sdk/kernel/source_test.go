package kernel

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// The kernel runs from byte-code compiled by the sandbox's interpreter, and
// behaves as when it runs as a script.
func TestKernelByteCode(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	dir := t.TempDir()
	path, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	compile := exec.Command(py, "-I", "-B", "-c", CompileProgram(path))
	compile.Stdin = bytes.NewReader(Source())
	out, err := compile.Output()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if err := InstallByteCode(dir, out); err != nil {
		t.Fatal(err)
	}
	if err := InstallByteCode(dir, []byte("garbage")); err == nil {
		t.Error("InstallByteCode accepted output without a cache tag")
	}

	// Python reports where a module's code object came from with -v.
	probe := exec.Command(py, "-I", "-B", "-v", "-c", "import sys; sys.path.insert(0, "+pyString(dir)+"); import mcpruntime_kernel")
	var stderr bytes.Buffer
	probe.Stderr = &stderr
	if err := probe.Run(); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	if want := "code object from '" + filepath.Join(dir, "__pycache__"); !strings.Contains(stderr.String(), want) {
		t.Fatalf("kernel not loaded from its byte-code (want %q in python -v output)", want)
	}

	// A changed kernel is not run from stale byte-code (checked hash).
	if err := os.WriteFile(path, append(Source(), []byte("\nSTALE_CHECK = 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(py, "-I", "-B", "-c", "import sys; sys.path.insert(0, "+pyString(dir)+"); import mcpruntime_kernel as k; print(k.STALE_CHECK)")
	if out, err := check.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("changed source: %v %q", err, out)
	}
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}

	l := startSession(t, func() (*exec.Cmd, error) { return exec.Command(py, "-I", "-B", "-c", Bootstrap(dir)), nil })
	_, c := run(t, l, "import sys; print("+pyString(dir)+" in sys.path, 6 * 7)", sdk.Limits{}, nil)
	if got := c.stdout.String(); got != "False 42\n" {
		t.Fatalf("stdout %q, want the kernel dir off sys.path and 42", got)
	}
	res, _ := run(t, l, "1/0", sdk.Limits{}, nil)
	if res.Exception == nil || strings.Contains(res.Exception.Traceback, FileName) {
		t.Fatalf("traceback shows kernel frames: %+v", res.Exception)
	}
}

// EnsureByteCode compiles once per kernel and interpreter.
func TestEnsureByteCodeCompilesOnce(t *testing.T) {
	dir := t.TempDir()
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	calls := 0
	compile := func(src []byte) ([]byte, error) {
		calls++
		if !bytes.Equal(src, Source()) {
			t.Error("compile got something other than the kernel source")
		}
		return append([]byte("cpython-399\n"), make([]byte, 32)...), nil
	}
	for _, interp := range []string{"py-a", "py-a", "py-b", "py-b"} {
		if _, err := EnsureByteCode(dir, interp, compile); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("compiled %d times for two interpreters, want 2", calls)
	}
	if _, err := os.Stat(filepath.Join(dir, "__pycache__", "mcpruntime_kernel.cpython-399.pyc")); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureByteCode(dir, "py-c", func([]byte) ([]byte, error) { return []byte("no tag"), nil }); err == nil {
		t.Fatal("bad compiler output accepted")
	}
}
