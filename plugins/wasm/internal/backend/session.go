package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// session is one sdk session: the sdk's kernel.Session over workers from
// the pool, and the host directory standing in for /mcpruntime/lib.
type session struct {
	*kernel.Session
	lib string
	run *runDir // holds lib; the session holds a reference to it
}

// newSession prepares the import root for spec's mounts. Mounts must sit
// below sdk.GuestLib: WASI mount points are fixed when an instance starts,
// before a pooled worker knows its session, and /mcpruntime/lib is the one
// that is re-pointed per session.
func (b *Backend) newSession(spec *sdk.SessionSpec, run *runDir, memory int64) (*session, error) {
	if spec.Workspace == "" {
		return nil, fmt.Errorf("session %s: no workspace", spec.ID)
	}
	ws, err := filepath.Abs(spec.Workspace)
	if err != nil {
		return nil, fmt.Errorf("session %s: workspace: %w", spec.ID, err)
	}
	if st, err := os.Stat(ws); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("session %s: workspace %s is not a directory", spec.ID, ws)
	}
	mounts, err := sdk.LibMounts(spec)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w (the wasm backend mounts only below %s)", spec.ID, err, sdk.GuestLib)
	}
	lib, err := os.MkdirTemp(run.path, "lib-")
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	if err := linkMounts(lib, mounts); err != nil {
		os.RemoveAll(lib)
		return nil, fmt.Errorf("session %s: %w", spec.ID, err)
	}
	t := &transport{b: b, workspace: ws, lib: lib, mounts: mounts, memory: memory, id: spec.ID}
	s := kernel.NewSession(kernel.SessionOptions{
		ID: spec.ID, Transport: t, Limits: spec.Limits, Host: spec.Host, Logger: b.logger,
		Sandbox: "the WebAssembly instance",
		// The kernel chdir'd into the empty placeholder at start-up and the
		// import system cached directory listings: re-enter and forget them.
		Setup:     kernel.Setup{Env: spec.Env, Cwd: sdk.GuestWorkspace, ForgetImportCaches: true, Reseed: true},
		AfterExec: noteStorageFull,
	})
	return &session{Session: s, lib: lib, run: run}, nil
}

// linkMounts links each library mount into the session's import root.
func linkMounts(lib string, mounts []sdk.LibMount) error {
	for _, m := range mounts {
		dst := filepath.Join(lib, m.Rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.Rel, err)
		}
		if err := os.Symlink(m.Source, dst); err != nil {
			return fmt.Errorf("mount %s: %w", m.Rel, err)
		}
	}
	return nil
}

// transport gives a session workers: from the warm pool, bound to the
// session's directories.
type transport struct {
	b         *Backend
	id        string
	workspace string
	lib       string
	mounts    []sdk.LibMount
	memory    int64
}

// Start implements kernel.Transport.
func (t *transport) Start(ctx context.Context) (kernel.Process, error) {
	p, _, _, err := t.b.configured(false)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	w, pooled, err := p.get(ctx, t.memory)
	if err != nil {
		return nil, err
	}
	got := time.Now()
	if err := w.bind(ctx, t.workspace, t.lib, t.mounts); err != nil {
		w.kill()
		return nil, err
	}
	t.b.logger.Debug("session attached", "session", t.id, "pooled", pooled, "get", got.Sub(start), "bind", time.Since(got))
	return w, nil
}

// close stops the worker and removes the import root.
func (s *session) close(ctx context.Context) error {
	err := s.Close(ctx)
	if rerr := os.RemoveAll(s.lib); rerr != nil && err == nil {
		err = fmt.Errorf("remove import root: %w", rerr)
	}
	return err
}

// storageFullNote is what a result says when the code's writes found the
// host's file system full: wazero cannot give the guest ENOSPC (see the
// guest package's full.go), so Python saw EIO.
const storageFullNote = "the workspace's file system is full: a write failed on the host with ENOSPC " +
	"(No space left on device), which the WebAssembly engine reports to Python as [Errno 29] I/O error"

// noteStorageFull adds storageFullNote to res when the worker reported a
// full file system during the execution.
func noteStorageFull(_ context.Context, p kernel.Process, res *sdk.ExecResult) {
	w, ok := p.(*proc)
	if !ok || !w.storageFull() {
		return
	}
	if res.Message != "" {
		res.Message += "; "
	}
	res.Message += storageFullNote
}
