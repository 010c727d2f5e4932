//go:build !unix

package mcp

import (
	"os/exec"
)

// setProcessGroup is a no-op where process groups do not exist.
func setProcessGroup(*exec.Cmd) {}

// terminateProcessGroup kills the server itself where signals and process
// groups do not exist.
func terminateProcessGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// killProcessGroup is a no-op where process groups do not exist.
func killProcessGroup(int) {}
