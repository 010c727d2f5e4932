module github.com/mcpruntime/mcpruntime/examples/plugins/hostpython

go 1.26
