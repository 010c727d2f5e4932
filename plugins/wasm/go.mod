module github.com/mcpruntime/mcpruntime/plugins/wasm

go 1.26

require (
	github.com/mcpruntime/mcpruntime/sdk v0.0.0
	github.com/tetratelabs/wazero v1.12.0
)

replace github.com/mcpruntime/mcpruntime/sdk => ../../sdk
