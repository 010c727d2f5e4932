module github.com/mcpruntime/mcpruntime/plugins/microvm

go 1.26.0

require github.com/mcpruntime/mcpruntime/sdk v0.0.0

require github.com/pierrec/lz4/v4 v4.1.33 // indirect

replace github.com/mcpruntime/mcpruntime/sdk => ../../sdk
