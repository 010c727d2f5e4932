package backend

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// Restore implements sdk.Backend: a VM resumed from the snapshot (its
// standby, restored and warmed ahead of demand, or a cold restore) gets a
// reseeded RNG and the new session's settings and workspace, and keeps the
// kernel's variables: the kernel the snapshot holds is configured for the
// new session and adopted by its kernel.Session.
func (b *Backend) Restore(ctx context.Context, snapshotID string, spec *sdk.SessionSpec) error {
	if _, err := b.configured(); err != nil {
		return err
	}
	st := b.standbys()
	dir, meta, err := b.readMeta(snapshotID)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && st != nil {
			st.forget(snapshotID) // deleted behind the plugin's back
		}
		return err
	}
	if err := b.reserve(spec.ID); err != nil {
		return err
	}
	start := time.Now()
	v, from, err := b.restoredVM(ctx, st, snapshotID, dir, meta)
	if err != nil {
		b.settle(spec.ID, nil)
		return fmt.Errorf("restore %s: %w", snapshotID, err)
	}
	s, err := b.newSession(spec)
	if err != nil {
		v.destroy()
		b.settle(spec.ID, nil)
		return fmt.Errorf("restore %s: %w", snapshotID, err)
	}
	if err := s.adoptRestored(ctx, v); err != nil {
		v.destroy()
		b.settle(spec.ID, nil)
		return fmt.Errorf("restore %s: %w", snapshotID, err)
	}
	b.settle(spec.ID, s)
	b.log.Debug("restored", "snapshot", snapshotID, "session", spec.ID, "vm", v.id, "from", from, "took", time.Since(start))
	return nil
}

// restoredVM returns a reseeded VM running the snapshot: its standby when
// one is ready or in flight, else a cold restore. from says which.
func (b *Backend) restoredVM(ctx context.Context, st *standbys, id, dir string, meta *snapMeta) (v *vm, from string, err error) {
	if st != nil {
		// Taking the standby has its pool restore a replacement a
		// moment later, so its restore does not slow this session.
		if v, err = st.take(ctx, id); err != nil {
			return nil, "", err
		}
		if v != nil {
			err := b.reseed(ctx, v)
			if err == nil {
				return v, "standby", nil
			}
			// It died between the check and the reseed: go cold.
			b.log.Warn("standby VM failed; restoring cold", "snapshot", id, "vm", v.id, "error", err)
			v.destroy()
		}
	}
	if v, err = b.loadSnapshot(ctx, dir, meta); err != nil {
		return nil, "", err
	}
	if err := b.reseed(ctx, v); err != nil {
		v.destroy()
		return nil, "", err
	}
	return v, "cold", nil
}

// loadSnapshot starts a VM from the snapshot in dir and connects to its
// agent and kernel. The VM is not reseeded yet.
func (b *Backend) loadSnapshot(ctx context.Context, dir string, meta *snapMeta) (*vm, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.bootTimeout)
	defer cancel()
	id := newID()
	spec := b.vmSpec(id)
	im := meta.Image
	spec.Image, spec.MemoryMiB, spec.VCPUs = &im, meta.MemoryMiB, meta.VCPUs
	m, err := b.driver.Restore(ctx, spec, dir)
	if err != nil {
		os.RemoveAll(spec.Dir)
		return nil, err
	}
	v := &vm{id: id, dir: spec.Dir, m: m, agent: newAgentClient(m.Agent()), log: b.log}
	if err := v.waitAgent(ctx); err != nil {
		v.destroy()
		return nil, err
	}
	v.adoptKernel(meta.Gen)
	return v, nil
}

// adoptRestored makes v, restored from a snapshot, the session's VM: the
// guest is wiped and attached, its kernel (the snapshot's, with its
// variables) configured for this session and adopted, not replaced.
func (s *session) adoptRestored(ctx context.Context, v *vm) error {
	if err := s.attach(ctx, v, true); err != nil {
		return err
	}
	if err := v.proc.Conn().Configure(ctx, sessionSetup(s.spec)); err != nil {
		return fmt.Errorf("configure the restored kernel: %w", err)
	}
	s.mu.Lock()
	s.v = v
	s.mu.Unlock()
	s.Adopt(v.proc)
	return nil
}

// reseed mixes fresh host randomness into the guest's RNG: every VM
// restored from one snapshot starts with the same RNG state. (Python's
// random module is reseeded by the session attach that follows.)
func (b *Backend) reseed(ctx context.Context, v *vm) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.bootTimeout)
	defer cancel()
	seed := make([]byte, 64)
	_, _ = rand.Read(seed)
	if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpReseed, Seed: seed}); err != nil {
		return fmt.Errorf("reseed the guest RNG: %w", err)
	}
	return nil
}
