package backend

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// DefaultMemory caps a session's guest memory when its limits set none.
const DefaultMemory = 1 << 30

// config is the plugin's runtime.hcl block.
type config struct {
	// PythonDir overrides where the CPython-for-WASI build is found.
	PythonDir string `json:"python_dir"`
	// CacheDir overrides where compiled python.wasm is cached.
	CacheDir string `json:"cache_dir"`
	// Memory is the default guest memory cap, e.g. "1GiB".
	Memory string `json:"memory"`
	// Packages selects the interpreter that has these optional packages
	// linked in (artefacts.WithPackages); none: the stdlib-only one.
	Packages []string `json:"packages"`
	// Engine is the WebAssembly engine: "wasmtime" or "wazero" (engine.go).
	Engine string `json:"engine"`
}

func configSpec() *sdk.ConfigSpec {
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "python_dir", Type: sdk.TypeString, Description: "directory holding python.wasm and lib/python3.13 (default: wasm-python/ beside the plugin binary)"},
		{Name: "cache_dir", Type: sdk.TypeString, Description: "compilation cache for python.wasm (default: <state dir>/wazero-cache)"},
		{Name: "memory", Type: sdk.TypeSize, Default: "1GiB", Description: "guest memory cap when the session's limits set none (at most 4GiB, the wasm32 maximum)"},
		{Name: "packages", Type: sdk.TypeStringList, Description: "optional Python packages with C extensions, e.g. [\"pillow\"]: selects the interpreter built with them (python/build.sh; numpy and pandas are not built for WASI yet)"},
		engineAttribute(),
	}}
}

// parseSize reads sizes such as "512MiB", "1GB" or "1048576".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as MiB or GiB", s)
	}
	return int64(n * float64(mult)), nil
}
