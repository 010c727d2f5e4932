module github.com/mcpruntime/mcpruntime/core

go 1.26
