//go:build nowasmtime

package guest

import "errors"

// WasmtimeVersion is empty: this build has no wasmtime.
const WasmtimeVersion = ""

// WasmtimeAvailable reports whether this build includes wasmtime.
const WasmtimeAvailable = false

func newWasmtime(EngineOptions) (Engine, error) {
	return nil, errors.New("engine wasmtime: this plugin was built without it (-tags nowasmtime); use engine = \"wazero\"")
}
