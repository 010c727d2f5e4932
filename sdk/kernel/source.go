// Package kernel holds the Python kernel every mcpruntime backend runs and
// the Go side of its framed protocol.
//
// A backend starts kernel.py (see Source) with any Python 3.11+ and connects
// its two ends to a Conn; the Conn runs code, streams output, relays the
// kernel's host calls to an sdk.Host, and enforces the output cap. Only the
// transport differs between backends: pipes to a local process, FIFOs to a
// container task, a virtio-serial port into a VM, or stdin/stdout of
// CPython-on-WASI.
package kernel

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:embed kernel.py
var source []byte

// Source returns the kernel program (Python source).
func Source() []byte { return append([]byte(nil), source...) }

// FileName is the name the kernel is installed under.
const FileName = "mcpruntime_kernel.py"

// Install writes the kernel into dir (created if needed) and returns its
// path. The write is atomic, so concurrent installs are safe.
func Install(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(source) {
		return path, nil
	}
	if err := writeAtomic(path, source); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	return path, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory, world-readable: sandboxes read it as another user.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kernel-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Bootstrap is a `python -c` program that runs the kernel installed in dir
// as an imported module rather than as a script. Python compiles a script
// on every start (~9 ms of a cold start natively, several times that under
// emulation), while a module's byte-code comes from its __pycache__ when
// InstallByteCode put it there; without it the module is compiled as before.
// dir is taken off sys.path again before sandbox code runs.
func Bootstrap(dir string) string {
	return fmt.Sprintf("import sys; sys.path.insert(0, %s); import mcpruntime_kernel as k; del sys.path[0]; k.main()", pyString(dir))
}

// CompileProgram is a `python -c` program, run by the sandbox's own
// interpreter, that reads the kernel source on stdin and writes its cache
// tag, a newline and the byte-code file for it (a checked-hash .pyc, so a
// stale file is never used for a changed kernel) on stdout. guestPath is
// where the kernel lives as the sandbox sees it.
func CompileProgram(guestPath string) string {
	return "import sys, importlib.util as u, importlib._bootstrap_external as b\n" +
		"src = sys.stdin.buffer.read()\n" +
		"code = compile(src, " + pyString(guestPath) + ", 'exec', dont_inherit=True)\n" +
		"pyc = b._code_to_hash_pyc(code, u.source_hash(src), True)\n" +
		"sys.stdout.buffer.write(sys.implementation.cache_tag.encode() + b'\\n' + pyc)\n"
}

// InstallByteCode stores the output of CompileProgram beside the kernel
// installed in dir, where Bootstrap's import finds it. The write is atomic.
func InstallByteCode(dir string, out []byte) error {
	tag, pyc, ok := strings.Cut(string(out), "\n")
	if !ok || tag == "" || strings.ContainsAny(tag, "/\\") || len(pyc) < 16 {
		return fmt.Errorf("install kernel byte-code: unexpected compiler output (%d bytes)", len(out))
	}
	cache := filepath.Join(dir, "__pycache__")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("install kernel byte-code: %w", err)
	}
	name := strings.TrimSuffix(FileName, ".py") + "." + tag + ".pyc"
	return writeAtomic(filepath.Join(cache, name), []byte(pyc))
}

// EnsureByteCode puts the kernel's byte-code beside the kernel installed in
// dir, unless the byte-code there was made from this kernel for the same
// interpreter. interpreter identifies the sandbox's Python (an image id,
// a build hash); compile runs CompileProgram in it with src on stdin and
// returns its standard output. It reports whether it compiled.
func EnsureByteCode(dir, interpreter string, compile func(src []byte) ([]byte, error)) (bool, error) {
	sum := sha256.Sum256(source)
	key := hex.EncodeToString(sum[:]) + " " + interpreter
	stamp := filepath.Join(dir, ".bytecode-key")
	if cur, err := os.ReadFile(stamp); err == nil && string(cur) == key {
		return false, nil
	}
	out, err := compile(Source())
	if err != nil {
		return false, fmt.Errorf("compile the kernel: %w", err)
	}
	if err := InstallByteCode(dir, out); err != nil {
		return false, err
	}
	if err := writeAtomic(stamp, []byte(key)); err != nil {
		return false, fmt.Errorf("install kernel byte-code: %w", err)
	}
	return true, nil
}

// pyString quotes s as a Python string literal.
func pyString(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid Python literal
	return string(b)
}
