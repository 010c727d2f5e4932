package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
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
	id := newID() + newID()
	dir, err := b.snapDir(id)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var size int64
	err = s.withVM(ctx, func(v *vm) error {
		if err := s.ws.pull(ctx, v.agent); err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
		n, err := v.m.Snapshot(ctx, dir)
		if err != nil {
			return err
		}
		size = n
		meta := snapMeta{
			ID: id, Driver: b.driver.Name(), Accel: b.accel, MemoryMiB: b.cfg.memoryMiB, VCPUs: b.cfg.VCPUs,
			Image: *b.image, Gen: v.gen, Session: sessionID, Created: time.Now().UTC(),
		}
		raw, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "meta.json"), raw, 0o600)
	})
	if err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			b.log.Warn("remove a failed snapshot", "dir", dir, "error", rerr)
		}
		return nil, fmt.Errorf("snapshot %s: %w", sessionID, err)
	}
	b.log.Debug("snapshot taken", "session", sessionID, "snapshot", id, "bytes", size, "took", time.Since(start))
	if st := b.standbys(); st != nil {
		st.remember(id)
	}
	return &sdk.Snapshot{ID: id, SizeBytes: size}, nil
}

// readMeta loads and checks a snapshot's metadata: it must have been taken
// with this plugin's VMM and accelerator, and its guest image must still
// exist.
func (b *Backend) readMeta(id string) (string, *snapMeta, error) {
	dir, err := b.snapDir(id)
	if err != nil {
		return "", nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return "", nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	var meta snapMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return "", nil, fmt.Errorf("snapshot %s: metadata is corrupt: %w", id, err)
	}
	if meta.Driver != b.driver.Name() || meta.Accel != b.accel {
		return "", nil, fmt.Errorf("snapshot %s was taken with %s/%s; this plugin runs %s/%s", id, meta.Driver, meta.Accel, b.driver.Name(), b.accel)
	}
	if err := meta.Image.Check(); err != nil {
		return "", nil, fmt.Errorf("snapshot %s needs the guest image it was taken with: %w", id, err)
	}
	return dir, &meta, nil
}

// stamp identifies the saved state files of a snapshot (names, inodes,
// sizes, times): a VM restored ahead of demand is only handed out while
// the files it was loaded from are unchanged.
func stamp(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		var ino uint64
		var ctime int64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino, ctime = st.Ino, st.Ctim.Nano()
		}
		fmt.Fprintf(&sb, "%s:%d:%d:%d:%d;", e.Name(), ino, fi.Size(), fi.ModTime().UnixNano(), ctime)
	}
	return sb.String(), nil
}
