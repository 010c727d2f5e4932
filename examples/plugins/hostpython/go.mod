module github.com/mcpruntime/mcpruntime/examples/plugins/hostpython

go 1.26

require github.com/mcpruntime/mcpruntime/sdk v0.0.0

replace github.com/mcpruntime/mcpruntime/sdk => ../../../sdk
