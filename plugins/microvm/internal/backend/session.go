package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// session is one sandbox session: the sdk's kernel.Session over kernel
// generations in a VM of its own (replaced if it dies), plus the workspace
// and library mirrors. The session is its own kernel.Transport.
type session struct {
	*kernel.Session
	b    *Backend
	spec *sdk.SessionSpec
	ws   *syncer
	libs []*syncer

	mu sync.Mutex // guards v
	v  *vm

	// What the last attach did with the workspace (tests, the benchmark).
	fromImage  bool
	attachPush syncStats
}

// newSession validates spec's mounts and prepares the session; it has no
// VM until Start (or adopt) gives it one.
func (b *Backend) newSession(spec *sdk.SessionSpec) (*session, error) {
	mounts, err := sdk.LibMounts(spec)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w (the microvm backend mounts only below %s)", spec.ID, err, sdk.GuestLib)
	}
	s := &session{b: b, spec: spec, ws: newSyncer(spec.Workspace, proto.TreeWorkspace, b.cfg.maxWorkspace)}
	s.ws.watch, s.ws.lazy, s.ws.log = true, b.workspaceOnDisk(), b.log.With("session", spec.ID)
	for _, m := range mounts {
		l := newSyncer(m.Source, proto.TreeLib, b.cfg.maxWorkspace)
		l.prefix = m.Rel
		s.libs = append(s.libs, l)
	}
	s.Session = kernel.NewSession(kernel.SessionOptions{
		ID: spec.ID, Transport: s, Setup: sessionSetup(spec), Limits: spec.Limits, Host: spec.Host,
		Grace: b.cfg.grace, Sandbox: "the kernel in the microVM", Logger: b.log,
		BeforeExec: s.beforeExec, AfterExec: s.afterExec,
	})
	return s, nil
}

// sessionSetup is what every kernel of the session is configured with.
// The pids limit is the agent's (a cgroup), applied at attach.
func sessionSetup(spec *sdk.SessionSpec) kernel.Setup {
	return kernel.Setup{Env: spec.Env, Cwd: sdk.GuestWorkspace, MemoryBytes: spec.Limits.MemoryBytes, Reseed: true}
}

// Start implements kernel.Transport: the session's VM (a pooled one,
// attached, when it has none or its VM died) starts a kernel generation.
// A pooled VM's own kernel, which has run nothing, is the first.
func (s *session) Start(ctx context.Context) (kernel.Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v != nil && !s.v.alive() {
		s.b.log.Warn("session VM died; replacing it", "session", s.spec.ID, "vm", s.v.id, "why", s.v.m.Describe())
		s.v.destroy()
		s.v = nil
	}
	if s.v == nil {
		p, err := s.b.configured()
		if err != nil {
			return nil, err
		}
		v, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.attach(ctx, v, false); err != nil {
			v.destroy()
			return nil, fmt.Errorf("prepare VM for session %s: %w", s.spec.ID, err)
		}
		s.v = v
		if v.fresh && alive(v.proc) {
			v.fresh = false
			return v.proc, nil
		}
	}
	if err := s.v.startKernel(ctx); err != nil {
		return nil, err
	}
	return s.v.proc, nil
}

func alive(p kernel.Process) bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

func (s *session) sessionConfig() *proto.SessionConfig {
	c := &proto.SessionConfig{Pids: s.spec.Limits.Pids}
	for _, l := range s.libs {
		c.LibDirs = append(c.LibDirs, l.prefix)
	}
	return c
}

// attach gives v to the session: libraries, sandbox settings, workspace,
// and the record that says which session the VM serves.
func (s *session) attach(ctx context.Context, v *vm, wipe bool) error {
	if wipe {
		if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpWipe}); err != nil {
			return err
		}
	}
	// First: the image replaces the guest's workspace file system.
	t0 := time.Now()
	imaged := false
	if !wipe { // a pooled VM, not a restored one
		var err error
		if imaged, err = s.attachImage(ctx, v); err != nil {
			return err
		}
	}
	t1 := time.Now()
	for _, l := range s.libs {
		l.reset()
		if err := l.push(ctx, v.agent); err != nil {
			return fmt.Errorf("copy %s into the VM: %w", l.dir, err)
		}
	}
	if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpAttach, Session: s.sessionConfig()}); err != nil {
		return err
	}
	if !imaged {
		s.ws.reset()
	}
	t2 := time.Now()
	if err := s.ws.push(ctx, v.agent); err != nil {
		return err
	}
	s.fromImage, s.attachPush = imaged, s.ws.pushStats
	s.b.log.Debug("session attached", "session", s.spec.ID, "image", t1.Sub(t0), "libraries+settings", t2.Sub(t1), "push", time.Since(t2), "pushed", s.ws.pushStats)
	return writeVMRecord(v.dir, s.spec.ID)
}

// vmRecord is written into a session VM's run directory: a plugin started
// after this one crashed finds there which session the VM serves.
type vmRecord struct {
	Session string `json:"session"`
}

const vmRecordFile = "session.json"

func writeVMRecord(dir, session string) error {
	raw, err := json.Marshal(vmRecord{Session: session})
	if err != nil {
		return fmt.Errorf("VM record: %w", err)
	}
	tmp := filepath.Join(dir, vmRecordFile+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("VM record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, vmRecordFile)); err != nil {
		return fmt.Errorf("VM record: %w", err)
	}
	return nil
}

// readVMRecord returns the session a VM directory records ("" for a VM
// that served none: pooled, standby).
func readVMRecord(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, vmRecordFile))
	if err != nil {
		return ""
	}
	var r vmRecord
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return r.Session
}

// beforeExec copies host changes of the workspace into the VM.
func (s *session) beforeExec(ctx context.Context, p kernel.Process) error {
	a := p.(*kproc).v.agent
	if err := s.ws.push(ctx, a); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if err := s.ws.limitGuest(ctx, a); err != nil {
		// The code still runs; only a full host disk is then reported after
		// it (the copy back fails) instead of as ENOSPC inside it.
		s.b.log.Warn("cannot bound the guest workspace by the host's free space", "session", s.spec.ID, "error", err)
	}
	return nil
}

// afterExec copies the guest's workspace changes to the host. A failure is
// reported in the result, since the code itself ran.
func (s *session) afterExec(ctx context.Context, p kernel.Process, res *sdk.ExecResult) {
	v := p.(*kproc).v
	var msg string
	if !v.alive() {
		msg = "files written by this execution were not copied back (the microVM stopped)"
	} else if err := s.ws.pull(ctx, v.agent); err != nil {
		s.b.log.Error("workspace sync failed", "session", s.spec.ID, "error", err)
		msg = "workspace files could not all be copied back: " + err.Error()
		if res.Error == sdk.ErrorNone {
			res.Error, res.ExitCode = sdk.ErrorInternal, 1
		}
	}
	if msg == "" {
		return
	}
	if res.Message != "" {
		msg = res.Message + "; " + msg
	}
	res.Message = msg
}

// vmHeld returns the session's VM with a live kernel while no execution
// runs, starting one if needed, and runs fn with it.
func (s *session) withVM(ctx context.Context, fn func(v *vm) error) error {
	if err := s.Session.Start(ctx); err != nil {
		return err
	}
	return s.Hold(func(p kernel.Process) error {
		if p == nil {
			return fmt.Errorf("session %s: its kernel exited", s.spec.ID)
		}
		return fn(p.(*kproc).v)
	})
}

// destroy stops the session's kernel and its VM.
func (s *session) destroy(ctx context.Context) {
	if err := s.Close(ctx); err != nil {
		s.b.log.Warn("close session", "session", s.spec.ID, "error", err)
	}
	s.ws.close() // background transfers first: their VM goes next
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v != nil {
		s.v.destroy()
		s.v = nil
	}
}

// workspaceOnDisk: guests keep the workspace on a disk of their own (QEMU
// with workspace_disk), not in a tmpfs.
func (b *Backend) workspaceOnDisk() bool {
	return b.cfg.WorkspaceDisk && b.driver != nil && b.driver.Name() == "qemu"
}
