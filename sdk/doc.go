// Package sdk is the contract between the mcpruntime core and its sandbox
// backends: the Backend interface, the types that cross the boundary and
// the errors that keep their meaning across it.
//
// The sdk is split by who uses it. A plugin author needs this package, the
// kernel subpackage (the in-sandbox Python kernel and kernel.Session, the
// session runtime every backend shares), pool (warm pools), rootfs (Debian
// root filesystems for images) and plugin, whose Serve runs a Backend as a
// plugin. None of these expose gRPC or go-plugin types. The core needs host:
// Launch, the gRPC Client, the plugin environment allow-list. The adapters
// between the two sides live in internal/wire. The conformance suite every
// backend must pass is sandboxtest.
package sdk
