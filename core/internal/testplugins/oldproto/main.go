// Command oldproto speaks a plugin protocol version the core does not: the
// handshake fails before any backend method could be called, so it serves
// none.
package main

import "github.com/mcpruntime/mcpruntime/sdk/host"

func main() { host.ServeVersion(nil, 99) }
