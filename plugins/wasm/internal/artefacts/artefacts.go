// Package artefacts finds the CPython-for-WASI build (python.wasm and its
// standard library) the plugin runs.
//
// The artefacts are installed beside the plugin binary, in
// <dir of binary>/wasm-python/, by `make build`. They are not embedded in the
// binary: the README has the measurements behind that choice.
package artefacts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DirName is the directory beside the plugin binary that holds the artefacts.
const DirName = "wasm-python"

// PythonVersion is the major.minor of the CPython build the plugin expects.
const PythonVersion = "3.13"

// Python is a located CPython-for-WASI build.
type Python struct {
	// Dir is the build's root directory.
	Dir string
	// Wasm is python.wasm.
	Wasm string
	// Lib holds python3.13/ (mounted at /usr/local/lib in the guest).
	Lib string
}

// Find returns the build in dir when dir is set (a config override), else
// the one installed beside the running binary.
func Find(dir string) (*Python, error) {
	if dir != "" {
		return Check(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate plugin binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	p, err := Check(filepath.Join(filepath.Dir(exe), DirName))
	if err != nil {
		return nil, fmt.Errorf("%w (build it with `make -C plugins/wasm build`, or set python_dir in the wasm sandbox's config block)", err)
	}
	return p, nil
}

// Check verifies that dir holds a usable build.
func Check(dir string) (*Python, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("python artefacts %s: %w", dir, err)
	}
	p := &Python{Dir: abs, Wasm: filepath.Join(abs, "python.wasm"), Lib: filepath.Join(abs, "lib")}
	var missing []string
	for _, f := range []string{p.Wasm, filepath.Join(p.Lib, "python"+PythonVersion, "os.py")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, strings.TrimPrefix(f, abs+"/"))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("python artefacts in %s: %w: %s", abs, errNotFound, strings.Join(missing, ", "))
	}
	return p, nil
}

var errNotFound = errors.New("missing")
