package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Snapshots hold the session's variables as pickled by the kernel's
// save_state helper (functions and classes defined in cells are kept as
// source). The workspace is not part of them: it is the host directory the
// core owns and snapshots itself. Snapshot files live in the state
// directory and survive plugin restarts.

const snapFile = "snapshot.pkl"

// Snapshot implements sdk.Backend.
func (b *Backend) Snapshot(ctx context.Context, id string) (*sdk.Snapshot, error) {
	s, err := b.get(id)
	if err != nil {
		return nil, err
	}
	e := s.box.e
	guest := guestStateDir + "/" + snapFile
	code := "exec(" + strconv.Quote("import mcpruntime\nmcpruntime.save_state("+strconv.Quote(guest)+")") + ", {})"
	// A session just created may not have set its kernel up yet (open):
	// Start waits for that, or does it.
	if err := s.Start(ctx); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	err = s.Hold(func(p kernel.Process) error {
		if p == nil {
			return errors.New("the session's kernel is not running (its variables are lost)")
		}
		return stateCell(ctx, p, code)
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: save state: %w", id, err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	snapID := "osb-" + hex.EncodeToString(rnd[:])
	src := filepath.Join(s.box.slot.state(), snapFile)
	dst := filepath.Join(e.snapDir, snapID+".pkl")
	n, err := moveFile(src, dst)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return &sdk.Snapshot{ID: snapID, SizeBytes: n}, nil
}

// Restore implements sdk.Backend: a new session whose kernel loaded the
// snapshot's variables.
func (b *Backend) Restore(ctx context.Context, snapID string, spec *sdk.SessionSpec) error {
	e, err := b.currentEngine()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(snapID, "osb-") || strings.ContainsAny(snapID, "/.") {
		return fmt.Errorf("restore: unknown snapshot %q", snapID)
	}
	src := filepath.Join(e.snapDir, snapID+".pkl")
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("restore: snapshot %s: %w", snapID, err)
	}
	s, err := b.create(ctx, spec, true)
	if err != nil {
		return err
	}
	if err := s.load(ctx, src); err != nil {
		_ = b.DestroySession(context.WithoutCancel(ctx), spec.ID)
		return fmt.Errorf("restore %s into %s: %w", snapID, spec.ID, err)
	}
	return nil
}

// load restores the variables pickled in the host file src.
func (s *session) load(ctx context.Context, src string) error {
	return s.Hold(func(p kernel.Process) error {
		if p == nil {
			return errors.New("the session's kernel is not running")
		}
		dst := filepath.Join(s.box.slot.state(), "restore.pkl")
		if _, err := copyFile(src, dst); err != nil {
			return err
		}
		defer os.Remove(dst)
		guest := guestStateDir + "/restore.pkl"
		code := "exec(" + strconv.Quote("import mcpruntime\nr = mcpruntime.load_state("+strconv.Quote(guest)+")") + ", {})"
		return stateCell(ctx, p, code)
	})
}

// stateCell runs the kernel helper's save_state or load_state in a
// throw-away namespace (the kernel has no frame for them), discarding
// its output but for the errors it reports.
func stateCell(ctx context.Context, p kernel.Process, code string) error {
	var out strings.Builder
	res, err := p.Conn().Exec(ctx, kernel.Request{Code: code, Timeout: 30 * time.Second, Interrupt: p.Interrupt},
		nil, func(e sdk.Event) {
			if e.Kind == sdk.EventStderr && out.Len() < 4096 {
				out.Write(e.Data)
			}
		})
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%s %s", res.Message, strings.TrimSpace(out.String()))
	}
	return nil
}

func moveFile(src, dst string) (int64, error) {
	if err := os.Rename(src, dst); err == nil {
		st, err := os.Stat(dst)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	n, err := copyFile(src, dst)
	if err != nil {
		return 0, err
	}
	return n, os.Remove(src)
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, errors.Join(fmt.Errorf("copy %s: %w", src, err), os.Remove(dst))
	}
	return n, nil
}
