package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/owner"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

var _ sdk.Recoverer = (*Backend)(nil)

// errOtherCore: a dead plugin's run dir belongs to another core's plugin.
var errOtherCore = errors.New("run dir of another core's plugin")

// RecoverSessions implements sdk.Recoverer. The VMs of this plugin's
// predecessors (dead plugin processes of the same core, under the same
// state dir) are handed over at once: those of the sessions asked for are
// moved into this plugin's run dir and adopted, kernel and variables
// included; all others are killed. A session is recovered when its VM
// still runs and its kernel generation is alive and answers.
func (b *Backend) RecoverSessions(ctx context.Context, specs []*sdk.SessionSpec) ([]sdk.RecoveredSession, error) {
	if _, err := b.configured(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	runDir := b.runDir
	b.mu.Unlock()
	want := map[string]bool{}
	for _, s := range specs {
		want[s.ID] = true
	}
	found, err := handOver(runDir, want, b.log)
	if err != nil {
		return nil, fmt.Errorf("recover sessions: %w", err)
	}
	out := make([]sdk.RecoveredSession, len(specs))
	for i, spec := range specs {
		out[i].ID = spec.ID
		dir, ok := found[spec.ID]
		if !ok {
			out[i].Reason = "no VM of this session outlived the plugin process"
			continue
		}
		delete(found, spec.ID)
		if err := b.recoverSession(ctx, spec, dir); err != nil {
			b.log.Warn("session not recovered", "session", spec.ID, "error", err)
			out[i].Reason = err.Error()
			continue
		}
		b.log.Info("session recovered", "session", spec.ID, "vm", filepath.Base(dir))
		out[i].Recovered = true
	}
	for _, dir := range found { // a session given twice
		vmm.Sweep(dir, vmm.Marker(filepath.Base(dir)))
	}
	return out, nil
}

// handOver takes over the run dirs of dead plugin processes of this
// plugin's core under runDir's root: the VM directories of the sessions in
// want move into runDir (returned by session), everything else there is
// killed and removed. Dead plugins of other cores are left to the sweep.
func handOver(runDir string, want map[string]bool, log hclog.Logger) (map[string]string, error) {
	me, err := thisCore()
	if err != nil {
		return nil, err
	}
	root, mine := filepath.Dir(runDir), filepath.Base(runDir)
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("run root: %w", err)
	}
	found := map[string]string{}
	for _, e := range ents {
		id := e.Name()
		if !e.IsDir() || id == mine || !(owner.ValidID(id) || legacyRunDir.MatchString(id)) {
			continue
		}
		dir := filepath.Join(root, id)
		// A sweep may be reaping this owner right now (it holds the lock
		// for a moment): wait for it rather than miss the owner's VMs.
		for try := 0; ; try++ {
			dead, err := owner.Reap(root, id, func() error {
				if c, ok := readCoreRecord(dir); !ok || c != me {
					return errOtherCore
				}
				return takeOver(root, id, runDir, want, found, log)
			})
			if err != nil && !errors.Is(err, errOtherCore) {
				log.Warn("take over the run dir of a dead plugin process", "dir", dir, "error", err)
			}
			if dead || owner.Alive(root, id) || try == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return found, nil
}

// takeOver moves the wanted session VMs of a dead plugin's run dir into
// runDir and removes the rest. The caller holds the dead owner's lock.
func takeOver(root, id, runDir string, want map[string]bool, found map[string]string, log hclog.Logger) error {
	dir := filepath.Join(root, id)
	vms, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, v := range vms {
		if !v.IsDir() {
			continue
		}
		vdir := filepath.Join(dir, v.Name())
		sid := readVMRecord(vdir)
		if want[sid] && found[sid] == "" {
			dst := filepath.Join(runDir, v.Name())
			if err := os.Rename(vdir, dst); err != nil {
				log.Warn("cannot take over a session VM; removing it", "vm", v.Name(), "session", sid, "error", err)
			} else {
				found[sid] = dst
				continue
			}
		}
		log.Info("removing a VM of a dead plugin process that no session recovers", "vm", v.Name(), "session", sid)
		vmm.Sweep(vdir, vmm.Marker(v.Name()))
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return removeMarker(root, id)
}

// recoverTimeout bounds reconnecting to one VM.
const recoverTimeout = 30 * time.Second

// recoverSession adopts the VM in dir (already in this plugin's run dir)
// as spec's session: VMM, agent and the running kernel generation.
func (b *Backend) recoverSession(ctx context.Context, spec *sdk.SessionSpec, dir string) (err error) {
	id := filepath.Base(dir)
	if err := b.reserve(spec.ID); err != nil {
		vmm.Sweep(dir, vmm.Marker(id))
		return err
	}
	var v *vm
	defer func() {
		if err != nil {
			if v != nil {
				v.destroy()
			} else {
				vmm.Sweep(dir, vmm.Marker(id))
			}
			b.settle(spec.ID, nil)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	m, err := b.driver.Attach(ctx, b.vmSpec(id))
	if err != nil {
		return err
	}
	a, err := resyncAgent(ctx, m.Agent())
	if err != nil {
		m.Kill()
		return err
	}
	v = &vm{id: id, dir: dir, m: m, agent: a, log: b.log}
	if err := v.waitAgent(ctx); err != nil {
		return err
	}
	st, err := a.call(ctx, &proto.Msg{Op: proto.OpStatus})
	if err != nil {
		return err
	}
	if st.Gen == 0 {
		return errors.New("the VM runs no kernel")
	}
	if st.Pid == 0 {
		return fmt.Errorf("the session's kernel exited while no plugin was connected (%s%s)", st.Status, tailSuffix(st.Tail))
	}
	v.adoptKernel(st.Gen)
	// Frames the previous plugin left unread (the end of an execution it
	// did not live to see) come before the answer to a ping; a kernel
	// still running such code does not answer in time.
	if err := v.conn.Ping(ctx); err != nil {
		return fmt.Errorf("the session's kernel does not answer (still running code from before the restart?): %w", err)
	}
	s, err := b.newSession(spec)
	if err != nil {
		return err
	}
	s.v = v
	s.Adopt(v.proc)
	b.settle(spec.ID, s)
	return nil
}

func tailSuffix(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return ""
	}
	return "; kernel output: " + t
}
