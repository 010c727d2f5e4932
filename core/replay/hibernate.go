package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/internal/sessionreg"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Hibernator is the session.Checkpointer of a serving process: when it
// stops gracefully it saves each session's state with the machinery the
// recorder uses for steps, and the next process restores it into the same
// session id (session.Manager.Hibernate and its wake-up).
//
// On a backend with the snapshots capability the backend's snapshot holds
// the state (the names the session had are listed first, so the wake-up can
// say which the snapshot did not carry); otherwise the kernel pickles its
// variables (save_state) into the replay store, and the wake-up loads them
// (load_state); unpicklable ones are named as not carried. The workspace
// files stay where they are (a serving process's end does not touch them);
// a content-addressed snapshot of them is taken into the replay store all
// the same, named in the checkpoint, so they can be restored with the
// replay tools should something else change them meanwhile.
type Hibernator struct {
	m       *session.Manager
	logger  hclog.Logger
	exclude []string
}

// NewHibernator returns the checkpointer of m's sessions; exclude are
// paths workspace snapshots leave out (the state dir).
func NewHibernator(m *session.Manager, logger hclog.Logger, exclude ...string) *Hibernator {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Hibernator{m: m, logger: logger, exclude: exclude}
}

// HibernationPath is where the pickle of a hibernated session's variables
// goes, relative to the workspace.
func HibernationPath(sessionID string) string {
	return Dir + "/state/" + sessionID + "-hibernated.pkl"
}

// listCode prints the names of the session's globals as JSON.
const listCode = InternalMarker + "__import__('builtins').print(__import__('json').dumps(sorted(globals())))\n"

// Checkpoint implements session.Checkpointer.
func (h *Hibernator) Checkpoint(ctx context.Context, s *session.Session) (*sessionreg.Checkpoint, error) {
	cp := &sessionreg.Checkpoint{}
	if id, _, _, err := NewSnapshotter(s.Workspace, h.exclude...).Snapshot(); err != nil {
		h.logger.Warn("hibernate: workspace snapshot (the files stay in place)", "session", s.ID, "error", err)
	} else {
		cp.WorkspaceSnapshot = id
	}
	if s.Capabilities().Snapshots {
		names, err := h.names(ctx, s)
		if err == nil {
			var snap *sdk.Snapshot
			if snap, err = h.m.SnapshotHeld(ctx, s); err == nil {
				cp.Snapshot, cp.Saved = snap.ID, names
				return cp, nil
			}
		}
		h.logger.Warn("hibernate: backend snapshot failed; saving the pickled variables instead", "session", s.ID, "error", err)
	}
	ref := HibernationPath(s.ID)
	if err := prepareStateDir(s.Workspace); err != nil {
		return nil, err
	}
	out, res, err := h.m.ExecHeld(ctx, s, saveCode(ref))
	switch {
	case err != nil:
		return nil, fmt.Errorf("save state: %w", err)
	case res.Error != sdk.ErrorNone || res.ExitCode != 0:
		return nil, fmt.Errorf("save state: %s", strings.TrimSpace(res.Message))
	}
	var si StateInfo
	if err := parseLastJSON(out, &si); err != nil {
		return nil, fmt.Errorf("save state: unexpected save_state output: %w", err)
	}
	cp.State, cp.Saved, cp.NotCarried = ref, si.Saved, si.Skipped
	return cp, nil
}

// names lists the session's global names that are not private.
func (h *Hibernator) names(ctx context.Context, s *session.Session) ([]string, error) {
	out, res, err := h.m.ExecHeld(ctx, s, listCode)
	switch {
	case err != nil:
		return nil, fmt.Errorf("list variables: %w", err)
	case res.Error != sdk.ErrorNone || res.ExitCode != 0:
		return nil, fmt.Errorf("list variables: %s", strings.TrimSpace(res.Message))
	}
	var all []string
	if err := parseLastJSON(out, &all); err != nil {
		return nil, fmt.Errorf("list variables: %w", err)
	}
	names := []string{}
	for _, n := range all {
		if !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	return names, nil
}

// Restore implements session.Checkpointer.
func (h *Hibernator) Restore(ctx context.Context, s *session.Session, cp *sessionreg.Checkpoint) (map[string]string, error) {
	notCarried := map[string]string{}
	for k, v := range cp.NotCarried {
		notCarried[k] = v
	}
	if cp.Snapshot != "" {
		// Restored by the backend: check which of the names it had came
		// back.
		names, err := h.names(ctx, s)
		if err != nil {
			return nil, err
		}
		present := map[string]bool{}
		for _, n := range names {
			present[n] = true
		}
		for _, n := range cp.Saved {
			if !present[n] {
				notCarried[n] = "not in the session restored from the backend snapshot"
			}
		}
		return notCarried, nil
	}
	if cp.State == "" {
		return nil, errors.New("the checkpoint holds no state")
	}
	out, res, err := h.m.ExecHeld(ctx, s, loadCode(cp.State))
	switch {
	case err != nil:
		return nil, fmt.Errorf("load state: %w", err)
	case res.Error != sdk.ErrorNone || res.ExitCode != 0:
		return nil, fmt.Errorf("load state: %s", strings.TrimSpace(res.Message))
	}
	var loaded struct {
		Restored []string          `json:"restored"`
		Failed   map[string]string `json:"failed"`
	}
	if err := parseLastJSON(out, &loaded); err != nil {
		return nil, fmt.Errorf("load state: unexpected output: %w", err)
	}
	for k, v := range loaded.Failed {
		notCarried[k] = v
	}
	return notCarried, nil
}

// Discard implements session.Checkpointer.
func (h *Hibernator) Discard(ctx context.Context, s *session.Session, cp *sessionreg.Checkpoint) {
	if cp.Snapshot != "" {
		if err := DeleteBackendSnapshot(ctx, h.m, s.Backend, cp.Snapshot); err != nil && !errors.Is(err, sdk.ErrNotSupported) {
			h.logger.Warn("hibernation: delete the backend snapshot", "session", s.ID, "snapshot", cp.Snapshot, "error", err)
		}
	}
	if cp.State != "" {
		if err := removeState(s.Workspace, cp.State); err != nil {
			h.logger.Warn("hibernation: remove the pickle", "session", s.ID, "error", err)
		}
	}
}
