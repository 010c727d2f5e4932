package backend

import (
	"fmt"
	"os"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
)

// DefaultEngine is the engine when the config names none: wasmtime where
// the build has it (compute 1.3-1.9x faster than wazero, sessions from a
// pre-initialized image in a few ms; see the README's table), else wazero.
func DefaultEngine() string {
	if guest.WasmtimeAvailable {
		return guest.EngineWasmtime
	}
	return guest.EngineWazero
}

func engineAttribute() sdk.ConfigAttribute {
	return sdk.ConfigAttribute{
		Name: "engine", Type: sdk.TypeString, Default: DefaultEngine(),
		Description: fmt.Sprintf("WebAssembly engine: %q (Cranelift, through cgo) or %q (pure Go)", guest.EngineWasmtime, guest.EngineWazero),
	}
}

// EngineEnv, when set in the plugin's environment, overrides the config's
// engine: `mcpruntime bench` measures both engines with one runtime.hcl
// (through the sandbox's env).
const EngineEnv = "MCPRUNTIME_WASM_ENGINE"

// engineName resolves the configured engine.
func engineName(configured string) (string, error) {
	if v := os.Getenv(EngineEnv); v != "" {
		configured = v
	}
	switch configured {
	case "":
		return DefaultEngine(), nil
	case guest.EngineWazero:
		return configured, nil
	case guest.EngineWasmtime:
		if !guest.WasmtimeAvailable {
			return "", fmt.Errorf("engine %q: this plugin was built without it (-tags nowasmtime)", configured)
		}
		return configured, nil
	}
	return "", fmt.Errorf("engine %q: want %q or %q", configured, guest.EngineWasmtime, guest.EngineWazero)
}
