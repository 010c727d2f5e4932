package sdk

// MaxMessageBytes bounds one gRPC message between core and plugin (code sent
// for execution, one output chunk). gRPC's 4 MiB default is too small for
// agents that paste data into code.
const MaxMessageBytes = 64 << 20

// ProtocolVersion is the version of the plugin protocol this sdk speaks:
// a plugin built with it serves this version. It changes only when the
// Sandbox or Host service changes. Version 2 added RecoverSessions and
// DeleteSnapshot.
const ProtocolVersion = 2

// MinProtocolVersion is the oldest plugin protocol the core still speaks.
// A version-1 plugin works as before; the calls version 2 added report
// ErrNotSupported without reaching it.
const MinProtocolVersion = 1

// ProtocolVersions lists the plugin protocol versions the core accepts,
// oldest first.
func ProtocolVersions() []int {
	out := make([]int, 0, ProtocolVersion-MinProtocolVersion+1)
	for v := MinProtocolVersion; v <= ProtocolVersion; v++ {
		out = append(out, v)
	}
	return out
}

// PluginName is the key of the sandbox service in go-plugin's plugin map.
const PluginName = "sandbox"

// BinaryPrefix is how plugin executables are named: mcpruntime-plugin-NAME.
const BinaryPrefix = "mcpruntime-plugin-"
