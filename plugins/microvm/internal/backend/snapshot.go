package backend

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// A snapshot is the whole VM (memory, devices, the kernel's variables, the
// guest's copy of the workspace) saved by the VMM into
// <state>/snapshots/<id>/, plus meta.json naming what it needs to come back.

type snapMeta struct {
	ID        string      `json:"id"`
	Driver    string      `json:"driver"`
	Accel     string      `json:"accel"`
	MemoryMiB int         `json:"memory_mib"`
	VCPUs     int         `json:"vcpus"`
	Image     image.Image `json:"image"`
	Gen       uint32      `json:"kernel_generation"`
	Session   string      `json:"session"`
	Created   time.Time   `json:"created"`
}

var snapIDRE = regexp.MustCompile(`^[0-9a-f]{12,32}$`)

func (b *Backend) snapDir(id string) (string, error) {
	if !snapIDRE.MatchString(id) {
		return "", fmt.Errorf("snapshot %q: malformed id", id)
	}
	return filepath.Join(b.stateDir, "snapshots", id), nil
}

// Snapshot implements sdk.Backend: the session's VM is paused, saved and
// resumed; the session goes on unaffected.
func (b *Backend) Snapshot(ctx context.Context, sessionID string) (*sdk.Snapshot, error) {
	if _, err := b.configured(); err != nil {
		return nil, err
	}
	s, err := b.get(sessionID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: %s", sdk.ErrSessionNotFound, sessionID)
	}
	if _, err := s.ensure(ctx); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", sessionID, err)
	}
	if err := s.ws.pull(ctx, s.v.agent); err != nil {
		return nil, fmt.Errorf("snapshot %s: workspace: %w", sessionID, err)
	}
	id := newID() + newID()
	dir, _ := b.snapDir(id)
	start := time.Now()
	size, err := s.v.m.Snapshot(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot %s: %w", sessionID, err)
	}
	meta := snapMeta{
		ID: id, Driver: b.driver.Name(), Accel: b.accel, MemoryMiB: b.cfg.memoryMiB, VCPUs: b.cfg.VCPUs,
		Image: *b.image, Gen: s.v.gen, Session: sessionID, Created: time.Now().UTC(),
	}
	raw, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), raw, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("snapshot %s: %w", sessionID, err)
	}
	b.log.Debug("snapshot taken", "session", sessionID, "snapshot", id, "bytes", size, "took", time.Since(start))
	return &sdk.Snapshot{ID: id, SizeBytes: size}, nil
}

// Restore implements sdk.Backend: a new VM resumes from the snapshot with
// a reseeded RNG, takes the new session's settings and workspace, and keeps
// the kernel's variables.
func (b *Backend) Restore(ctx context.Context, snapshotID string, spec *sdk.SessionSpec) error {
	if _, err := b.configured(); err != nil {
		return err
	}
	dir, err := b.snapDir(snapshotID)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", snapshotID, err)
	}
	var meta snapMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("snapshot %s: metadata is corrupt: %w", snapshotID, err)
	}
	if meta.Driver != b.driver.Name() || meta.Accel != b.accel {
		return fmt.Errorf("snapshot %s was taken with %s/%s; this plugin runs %s/%s", snapshotID, meta.Driver, meta.Accel, b.driver.Name(), b.accel)
	}
	if err := meta.Image.Check(); err != nil {
		return fmt.Errorf("snapshot %s needs the guest image it was taken with: %w", snapshotID, err)
	}
	if err := b.reserve(spec.ID); err != nil {
		return err
	}
	v, err := b.restoreVM(ctx, dir, &meta)
	if err != nil {
		b.settle(spec.ID, nil)
		return fmt.Errorf("restore %s: %w", snapshotID, err)
	}
	s := b.newSession(spec)
	if err := s.attach(ctx, v, true); err != nil {
		v.destroy()
		b.settle(spec.ID, nil)
		return fmt.Errorf("restore %s: %w", snapshotID, err)
	}
	b.settle(spec.ID, s)
	return nil
}

func (b *Backend) restoreVM(ctx context.Context, dir string, meta *snapMeta) (*vm, error) {
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
	v := &vm{id: id, dir: spec.Dir, m: m, agent: newAgentClient(m.Agent())}
	if err := v.waitAgent(ctx); err != nil {
		v.destroy()
		return nil, err
	}
	seed := make([]byte, 64)
	_, _ = rand.Read(seed)
	if _, err := v.agent.call(ctx, &proto.Msg{Op: proto.OpReseed, Seed: seed}); err != nil {
		v.destroy()
		return nil, fmt.Errorf("reseed the guest RNG: %w", err)
	}
	v.adoptKernel(meta.Gen)
	return v, nil
}
