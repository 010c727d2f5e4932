package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// InternalMarker starts code the runtime runs for itself (saving and
// restoring state). Such executions are not recorded as steps.
const InternalMarker = "# mcpruntime:replay-internal\n"

// IsInternal reports whether code is the runtime's own.
func IsInternal(code string) bool { return strings.HasPrefix(code, InternalMarker) }

type ctxKey int

const (
	taskKey ctxKey = iota
	internalKey
)

// WithTask labels the executions run with ctx with task (e.g. the agent's
// goal) in the replay log.
func WithTask(ctx context.Context, task string) context.Context {
	return context.WithValue(ctx, taskKey, task)
}

// Internal marks executions run with ctx as the runtime's own: the
// recorder does not log them.
func Internal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey, (*saveJob)(nil))
}

// StateInfo is the sidecar of a state pickle: what save_state saved and
// skipped, or why there is no pickle.
type StateInfo struct {
	Saved      []string          `json:"saved"`
	Skipped    map[string]string `json:"skipped,omitempty"`
	Error      string            `json:"error,omitempty"`
	DurationMs float64           `json:"duration_ms"`
}

// StatePath is the pickle of session's variables after step, relative to
// the workspace (the sandbox's working directory).
func StatePath(sessionID string, step int) string {
	return Dir + "/state/" + sessionID + "-" + strconv.Itoa(step) + ".pkl"
}

// ReadStateInfo reads the sidecar of a state ref. It is reached without
// following a symlink (at it, the state directory or the store), must be
// a regular file of at most maxStateInfo bytes, and a missing one matches
// os.ErrNotExist.
func ReadStateInfo(workspace, ref string) (*StateInfo, error) {
	// ref comes from a log sandbox code can write: only the store's state
	// directory is read.
	if !filepath.IsLocal(filepath.FromSlash(ref)) || !strings.HasPrefix(ref, Dir+"/state/") {
		return nil, fmt.Errorf("bad state reference %q", ref)
	}
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("state info of %s: %w", ref, err)
	}
	defer root.Close()
	f, fi, err := root.Open(ref + ".json")
	if err != nil {
		return nil, fmt.Errorf("state info of %s: %w", ref, err)
	}
	defer f.Close()
	if fi.Size() > maxStateInfo {
		return nil, fmt.Errorf("state info of %s: %d bytes, more than the %d read", ref, fi.Size(), maxStateInfo)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateInfo+1))
	if err != nil {
		return nil, fmt.Errorf("state info of %s: %w", ref, err)
	}
	if int64(len(b)) > maxStateInfo {
		return nil, fmt.Errorf("state info of %s: more than the %d bytes read", ref, maxStateInfo)
	}
	var si StateInfo
	if err := json.Unmarshal(b, &si); err != nil {
		return nil, fmt.Errorf("state info of %s: %w", ref, err)
	}
	return &si, nil
}

// writeStateInfo writes the sidecar of ref whole (a new file renamed into
// place, so whatever is at its name, a symlink included, is replaced, not
// written through), in a state directory reached without following a
// symlink.
func writeStateInfo(workspace, ref string, si *StateInfo) error {
	b, err := json.Marshal(si)
	if err != nil {
		return fmt.Errorf("state info of %s: %w", ref, err)
	}
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return fmt.Errorf("state info of %s: %w", ref, err)
	}
	defer root.Close()
	dir := path.Dir(ref)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return storeErr(dir, err)
	}
	err = root.ReplaceFile(ref+".json", 0o644, func(f *os.File) error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		return f.Sync()
	})
	if err != nil {
		return fmt.Errorf("state info of %s: %w", ref, storeErr(dir, err))
	}
	return nil
}

// prepareStateDir creates the store's state directory, where the sandbox
// writes the pickles, refusing one that is a symlink or below one.
func prepareStateDir(workspace string) error {
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(Dir+"/state", 0o755); err != nil {
		return storeErr(Dir+"/state", err)
	}
	return nil
}

// removeState removes the pickle ref (a file or whatever is at its name,
// never what a symlink there points to); a missing one is no error.
func removeState(workspace, ref string) error {
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return fmt.Errorf("remove state %s: %w", ref, err)
	}
	defer root.Close()
	if err := root.Remove(ref); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state %s: %w", ref, storeErr(path.Dir(ref), err))
	}
	return nil
}

func saveCode(ref string) string {
	// No names are bound in the session's globals by this code.
	return InternalMarker + fmt.Sprintf("__import__('os').makedirs(%q, exist_ok=True)\n__import__('builtins').print(__import__('json').dumps(__import__('mcpruntime').save_state(%q)))\n",
		filepath.ToSlash(filepath.Dir(ref)), ref)
}

func loadCode(ref string) string {
	return InternalMarker + fmt.Sprintf("__import__('builtins').print(__import__('json').dumps(__import__('mcpruntime').load_state(%q)))\n", ref)
}

// Recorder appends a replay entry for every execution of a manager.
type Recorder struct {
	m      *session.Manager
	logger hclog.Logger
	// SaveState pickles the session's variables after every step.
	SaveState bool
	// Snapshots is when backend snapshots are taken (config.Snapshots*);
	// KeepSnapshots how many a live session keeps. Set them before the
	// first step.
	Snapshots     string
	KeepSnapshots int

	mu       sync.Mutex
	sessions map[string]*sessionState
	snaps    map[string]*Snapshotter
	wg       sync.WaitGroup
	bsnaps   backendSnaps

	statsMu sync.Mutex
	stats   Stats

	ret *retention // nil: no background retention
}

// Stats measure what recording costs.
type Stats struct {
	Steps int `json:"steps"`
	// Inline is spent before the execution returns to its caller:
	// workspace snapshot and the fsynced log line.
	Inline time.Duration `json:"inline_ns"`
	// State is the state save, run after the caller has its result.
	State      time.Duration `json:"state_ns"`
	StateSaves int           `json:"state_saves"`
	// Snapshot is the part of Inline spent taking backend snapshots
	// (every_step).
	Snapshot  time.Duration `json:"snapshot_ns"`
	Snapshots int           `json:"snapshots"`
}

type sessionState struct {
	next int
	task string
	log  *Log
	// stateErr is why the state of an earlier step was not saved (the
	// save runs after the caller has that step's result): reported in the
	// next step's result.
	stateErr string
}

type saveJob struct {
	session string
	step    int
	stale   bool
}

// Record registers a recorder on m and returns it. When the configuration
// sets replay.keep or replay.max_size (the defaults do), the recorder also
// prunes the store in the background (retention.go) until Close.
func Record(m *session.Manager, logger hclog.Logger) *Recorder {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	r := &Recorder{m: m, logger: logger, SaveState: true, sessions: map[string]*sessionState{}, snaps: map[string]*Snapshotter{},
		Snapshots: config.SnapshotsOnDemand, KeepSnapshots: config.DefaultKeepSnapshots,
		bsnaps: backendSnaps{bySession: map[string][]*SnapshotRecord{}, warned: map[string]bool{}}}
	if cfg := m.Config(); cfg != nil && cfg.Replay.Snapshots != "" {
		r.Snapshots, r.KeepSnapshots = cfg.Replay.Snapshots, cfg.Replay.KeepSnapshots
	}
	m.Observe(r.observe)
	m.OnClose(r.sessionClosed)
	r.startRetention()
	return r
}

// SetTask labels the following steps of session with task.
func (r *Recorder) SetTask(sessionID, task string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.sessions[sessionID]; ok {
		st.task = task
		return
	}
	r.sessions[sessionID] = &sessionState{next: -1, task: task}
}

// Wait blocks until pending state saves finish.
func (r *Recorder) Wait() { r.wg.Wait() }

// Stats returns what recording has cost so far.
func (r *Recorder) Stats() Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}

// Snapshotter returns the (shared) snapshotter of workspace.
func (r *Recorder) snapshotter(workspace string) *Snapshotter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.snaps[workspace]; ok {
		return s
	}
	var extra []string
	if cfg := r.m.Config(); cfg != nil && cfg.StateDir != "" {
		extra = append(extra, cfg.StateDir)
	}
	s := NewSnapshotter(workspace, extra...)
	r.snaps[workspace] = s
	return s
}

// step numbers the next step of s, continuing an existing log.
func (r *Recorder) step(s *session.Session) (*sessionState, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.sessions[s.ID]
	if !ok {
		st = &sessionState{next: -1}
		r.sessions[s.ID] = st
	}
	if st.log == nil {
		l, err := OpenLog(s.Workspace, s.ID)
		if err != nil {
			return nil, 0, err
		}
		st.log = l
	}
	if st.next < 0 {
		st.next = 1
		entries, _, _ := st.log.Read()
		for _, e := range entries {
			st.next = max(st.next, e.Step+1)
		}
	}
	n := st.next
	st.next++
	return st, n, nil
}

func (r *Recorder) observe(ctx context.Context, s *session.Session, step *session.Step) {
	if v := ctx.Value(internalKey); v != nil || IsInternal(step.Code) {
		if job, _ := v.(*saveJob); job != nil {
			r.mu.Lock()
			st := r.sessions[job.session]
			job.stale = st != nil && st.next != job.step+1
			r.mu.Unlock()
		}
		return
	}
	t0 := time.Now()
	st, n, err := r.step(s)
	if err != nil {
		r.logger.Warn("replay: not recording", "session", s.ID, "error", err)
		setReplayError(step, []string{"not recorded: " + err.Error()})
		return
	}
	// What of this step could not be recorded, for its caller.
	var failed []string
	r.mu.Lock()
	if st.stateErr != "" {
		failed = append(failed, st.stateErr)
		st.stateErr = ""
	}
	r.mu.Unlock()
	e := &Entry{Step: n, Time: step.Started, Session: s.ID, Code: step.Code, Stdout: step.Stdout, Stderr: step.Stderr,
		Backend: s.Backend, HostCalls: step.Calls}
	if u := r.m.Bridge().Usage(s.ID); u != (bridge.Usage{}) {
		e.HostUsage = &u
	}
	if task, ok := ctx.Value(taskKey).(string); ok && task != "" {
		e.Task = task
	} else {
		r.mu.Lock()
		e.Task = st.task
		r.mu.Unlock()
	}
	if res := step.Result; res != nil {
		e.Exit, e.DurationMs = res.ExitCode, float64(res.Duration.Microseconds())/1000
		e.ErrorKind, e.StateLost, e.Truncated = res.Error, res.StateLost, res.OutputTruncated
		if res.Error != sdk.ErrorNone {
			e.Error = res.Message
		}
		e.OK = res.ExitCode == 0 && res.Error == sdk.ErrorNone
	}
	if step.Err != nil {
		e.Exit, e.Error, e.OK = 125, step.Err.Error(), false
		e.DurationMs = float64(time.Since(step.Started).Microseconds()) / 1000
	}
	id, man, sst, err := r.snapshotter(s.Workspace).Snapshot()
	if err != nil {
		e.RecordError = "workspace snapshot: " + err.Error()
		failed = append(failed, e.RecordError)
		r.logger.Error("replay: workspace snapshot failed", "session", s.ID, "step", n, "error", err)
	} else {
		e.WorkspaceSnapshot, e.WorkspaceSkipped = id, man.Skipped
	}
	r.wrote(s.Workspace, sst.NewBytes)
	if len(step.Displays) > 0 {
		id, refs, written, err := storeOutputs(s.Workspace, step.Displays)
		r.wrote(s.Workspace, written)
		if err != nil {
			failed = append(failed, "rich outputs: "+err.Error())
			r.logger.Error("replay: storing rich outputs failed", "session", s.ID, "step", n, "error", err)
		}
		e.Outputs, e.OutputsManifest = refs, id
	}
	if r.SaveState {
		e.State = StatePath(s.ID, n)
	}
	inlineSnap := time.Duration(0)
	if r.Snapshots == config.SnapshotsEveryStep && step.Err == nil && r.snapshotCapable(ctx, s.Backend) {
		// The session is held while observers run: the snapshot is of the
		// state right after this step. Its failure is the entry's, not the
		// step's.
		t1 := time.Now()
		if rec, err := r.snapshotStep(ctx, s, n); err != nil {
			e.StateSnapshotError = err.Error()
			r.logger.Warn("replay: backend snapshot failed", "session", s.ID, "step", n, "error", err)
		} else {
			e.StateSnapshot = rec.ID
		}
		inlineSnap = time.Since(t1)
	}
	if written, err := st.log.appendN(e); err != nil {
		r.logger.Error("replay: cannot append to the log", "path", st.log.Path(), "error", err)
		failed = append(failed, fmt.Sprintf("step %d not in the replay log: %v", n, err))
		if r.SaveState {
			// No line refers to a pickle of this step: do not save one.
			e.State = ""
		}
	} else {
		r.wrote(s.Workspace, written)
	}
	setReplayError(step, failed)
	inline := time.Since(t0)
	r.statsMu.Lock()
	r.stats.Steps++
	r.stats.Inline += inline
	if inlineSnap > 0 {
		r.stats.Snapshot += inlineSnap
		r.stats.Snapshots++
	}
	r.statsMu.Unlock()
	r.logger.Debug("replay: step recorded", "session", s.ID, "step", n, "inline_ms", float64(inline.Microseconds())/1000)
	if e.State != "" {
		// The session is locked while observers run: save once it is free.
		// The job sees whether another step got in first (then the pickle
		// would be of a later state and is discarded).
		job := &saveJob{session: s.ID, step: n}
		r.wg.Add(1)
		go r.saveState(context.WithoutCancel(ctx), s, e.State, job)
	}
}

func (r *Recorder) saveState(ctx context.Context, s *session.Session, ref string, job *saveJob) {
	defer r.wg.Done()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, internalKey, job), 2*time.Minute)
	defer cancel()
	if err := prepareStateDir(s.Workspace); err != nil {
		// The save below then fails and says so in the sidecar.
		r.logger.Warn("replay: state directory", "session", s.ID, "error", err)
	}
	var out strings.Builder
	res, err := r.m.Exec(ctx, s, saveCode(ref), 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.Write(e.Data)
		}
	})
	si := &StateInfo{}
	switch {
	case err != nil:
		si.Error = "state not saved: " + err.Error()
	case job.stale:
		si.Error = fmt.Sprintf("state not saved: a later step of session %s ran before the state of step %d could be saved", s.ID, job.step)
		if err := removeState(s.Workspace, ref); err != nil {
			r.logger.Warn("replay: stale state", "session", s.ID, "ref", ref, "error", err)
		}
	case res.Error != sdk.ErrorNone || res.ExitCode != 0:
		si.Error = "state not saved: " + strings.TrimSpace(res.Message)
	default:
		if perr := parseLastJSON(out.String(), si); perr != nil {
			si.Error = "state not saved: unexpected save_state output: " + perr.Error()
		}
	}
	si.DurationMs = float64(time.Since(t0).Microseconds()) / 1000
	r.logger.Debug("replay: state saved", "session", s.ID, "step", job.step, "ms", si.DurationMs, "error", si.Error)
	var failure []string
	if si.Error != "" && !job.stale {
		// A stale save is no failure: a later step has its own.
		failure = append(failure, strings.TrimPrefix(si.Error, "state not saved: "))
	}
	if err := writeStateInfo(s.Workspace, ref, si); err != nil {
		r.logger.Warn("replay: state info", "ref", ref, "error", err)
		failure = append(failure, "its sidecar was not written: "+err.Error())
	}
	if si.Error == "" {
		r.wrote(s.Workspace, stateSize(s.Workspace, ref))
	}
	if len(failure) > 0 {
		msg := fmt.Sprintf("state of step %d not saved: %s", job.step, strings.Join(failure, "; "))
		r.logger.Warn("replay: "+msg, "session", s.ID)
		r.mu.Lock()
		if st := r.sessions[s.ID]; st != nil {
			st.stateErr = msg
		}
		r.mu.Unlock()
	}
	r.statsMu.Lock()
	r.stats.State += time.Since(t0)
	r.stats.StateSaves++
	r.statsMu.Unlock()
}

// setReplayError puts what was not recorded into the step's result, which
// its caller gets once the observers have run.
func setReplayError(step *session.Step, failed []string) {
	if len(failed) == 0 || step.Result == nil {
		return
	}
	if step.Result.ReplayError != "" {
		failed = append([]string{step.Result.ReplayError}, failed...)
	}
	step.Result.ReplayError = strings.Join(failed, "; ")
}

// stateSize is the size of the pickle ref, 0 if it cannot be seen.
func stateSize(workspace, ref string) int64 {
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return 0
	}
	defer root.Close()
	fi, err := root.Lstat(ref)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// parseLastJSON decodes the last non-empty line of out into v.
func parseLastJSON(out string, v any) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return errors.New("no output")
	}
	return json.Unmarshal([]byte(last), v)
}
