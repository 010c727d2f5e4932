// Package sdk is the contract between the mcpruntime core and its sandbox
// backends.
//
// A backend is a separately built program that implements [Backend] and
// calls [Serve]; the core launches it with hashicorp/go-plugin and talks to
// it over gRPC. Plugin authors never touch the generated protocol types: the
// adapters in this package translate between them and the Go types here.
//
// The in-sandbox Python kernel every backend runs lives in the kernel
// subpackage, and the conformance suite every backend must pass lives in
// sandboxtest.
package sdk
