package backend

import (
	"context"
	"fmt"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// warmDir is the scratch directory a warm-up writes in its own (wiped)
// guest workspace.
const warmDir = ".mcpruntime-standby"

// warm runs in a VM waiting for a session (a standby just restored from a
// snapshot, or a pooled VM just booted) the code paths the session's
// attach and first execution go through: RNG reseed, wipe, library and
// workspace file operations, workspace scan, a session attach and a kernel
// round trip. Under emulation each runs much faster the second time, once
// QEMU has translated it (pool → first exec went from 40–52 ms to 29–33 ms).
// None of them touches the kernel's variables (the configure frame sent
// changes only the working directory, to the one every session uses).
// It ends wiped (library unsealed), holding neither a snapshot's copy of an
// old session's workspace nor files of its own; the session's attach then
// writes its libraries, seals them and applies its settings, which also
// undoes any step when hurry (closed by a Restore waiting for a standby;
// nil for pooled VMs) cuts it short.
func (b *Backend) warm(ctx context.Context, v *vm, hurry <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.bootTimeout)
	defer cancel()
	call := func(m *proto.Msg) func() error {
		return func() error { _, err := v.agent.call(ctx, m); return err }
	}
	data := []byte("standby\n")
	steps := []func() error{
		func() error { return b.reseed(ctx, v) },
		call(&proto.Msg{Op: proto.OpWipe}),
		call(&proto.Msg{Op: proto.OpWrite, Tree: proto.TreeLib, Path: warmDir + "/lib.py", Data: data, Final: true, Mode: 0o644}),
		call(&proto.Msg{Op: proto.OpMkdir, Tree: proto.TreeWorkspace, Path: warmDir, Mode: 0o777}),
		call(&proto.Msg{Op: proto.OpWrite, Tree: proto.TreeWorkspace, Path: warmDir + "/file", Data: data, Final: true, Mode: 0o644}),
		call(&proto.Msg{Op: proto.OpWriteBatch, Tree: proto.TreeWorkspace, Files: []proto.File{{Path: warmDir + "/small", Data: data, Mode: 0o644}}}),
		call(&proto.Msg{Op: proto.OpScan}),
		call(&proto.Msg{Op: proto.OpRead, Tree: proto.TreeWorkspace, Path: warmDir + "/file", Length: chunk}),
		call(&proto.Msg{Op: proto.OpRemove, Tree: proto.TreeWorkspace, Path: warmDir}),
		call(&proto.Msg{Op: proto.OpAttach, Session: &proto.SessionConfig{}}),
		call(&proto.Msg{Op: proto.OpWipe}),
		// Kernel frames through the agent's relay, as a session's set-up
		// and executions send them. Nothing a session keeps: the session's
		// own configure frame follows when it takes the VM.
		func() error { return v.conn.Ping(ctx) },
		func() error { return v.conn.Configure(ctx, kernel.Setup{Cwd: sdk.GuestWorkspace}) },
	}
	for _, step := range steps {
		if hurried(hurry) {
			return nil
		}
		if err := step(); err != nil {
			return fmt.Errorf("warm standby: %w", err)
		}
	}
	return nil
}

// hurried reports whether a Restore is waiting for the standby.
func hurried(hurry <-chan struct{}) bool {
	select {
	case <-hurry:
		return true
	default:
		return false
	}
}
