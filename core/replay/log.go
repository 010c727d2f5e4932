// Package replay records every execution of a session to an append-only,
// fsynced log under <workspace>/.replay, with a content-addressed snapshot
// of the workspace and a pickle of the kernel's variables per step, and
// resumes or forks a session from any recorded step.
//
// Layout, all under <workspace>/.replay:
//
//	<session>.jsonl          one JSON line per step (Entry), fsynced
//	objects/<sha256>         workspace file contents, each stored once
//	manifests/<id>.json      one workspace snapshot; id = sha256 of the manifest
//	state/<session>-<n>.pkl  the kernel's variables after step n (save_state)
//	state/<session>-<n>.pkl.json  what was saved and skipped, or why not
//	lock                     the store lock (snapshots shared, sweeps exclusive)
//	swept                    replaced by each sweep that removed objects
//
// Durability: a record is one write(2) of the whole line, under a flock of
// the log, followed by fsync (and, for a new log, an fsync of the
// directory) before the step's result reaches its caller. A short or
// failed write or fsync truncates the log back to its size before the
// append, so a log only ever ends with a whole record; the step's result
// then carries replay_error. fsync per record costs about 0.15 ms per step
// on a local ext4 disk (BenchmarkAppendDurability) against 2-100 ms for
// the step itself, and is what makes "recorded" mean "survives a power
// cut". Readers (replay show, list, resume, retention) skip and report a
// torn or unparsable line (left by an older version or a crash) instead
// of failing.
//
// Retention (prune.go, retention.go): replay.keep and replay.max_size
// remove whole sessions, oldest first, and sweep what no kept session
// refers to; see Prune.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/core/bridge"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// Dir is the replay directory's name inside a workspace.
const Dir = ".replay"

// Entry is one line of a replay log: one finished execution. Step 0, when
// present, is not an execution but the origin of a resumed or forked
// session (ResumedFrom), carrying the workspace and state it started from.
type Entry struct {
	Step       int       `json:"step"`
	Time       time.Time `json:"time"`
	Session    string    `json:"session"`
	Task       string    `json:"task,omitempty"`
	Code       string    `json:"code"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Exit       int       `json:"exit"`
	OK         bool      `json:"ok"`
	DurationMs float64   `json:"duration_ms"`
	Backend    string    `json:"backend"`
	// WorkspaceSnapshot is the id of the workspace manifest after the step.
	WorkspaceSnapshot string `json:"workspace_snapshot,omitempty"`
	// WorkspaceSkipped lists files left out of the snapshot, with why.
	WorkspaceSkipped map[string]string `json:"workspace_skipped,omitempty"`
	// State is the kernel state pickle after the step, relative to the
	// workspace. It is written just after the line; its .json sidecar
	// says whether that succeeded (see StateInfo).
	State string `json:"state,omitempty"`
	// StateSnapshot is the backend snapshot of the session after the step
	// (replay.snapshots = "every_step" on a backend with the snapshots
	// capability); StateSnapshotError says why taking it failed (the step
	// itself is unaffected). Restores never trust this field: the
	// recorder keeps the ids it took.
	StateSnapshot      string                `json:"state_snapshot,omitempty"`
	StateSnapshotError string                `json:"state_snapshot_error,omitempty"`
	HostCalls          []*sdk.HostCallNotice `json:"host_calls,omitempty"`
	// Outputs are the step's rich outputs (plots, tables); their bytes are
	// in the store, named by the manifest OutputsManifest.
	Outputs         []OutputRef `json:"outputs,omitempty"`
	OutputsManifest string      `json:"outputs_manifest,omitempty"`
	// HostUsage is what the session's host calls (ask_llm, tools) have
	// consumed so far, including this step.
	HostUsage   *bridge.Usage `json:"host_usage,omitempty"`
	Error       string        `json:"error,omitempty"`
	ErrorKind   sdk.ErrorKind `json:"error_kind,omitempty"`
	StateLost   bool          `json:"state_lost,omitempty"`
	Truncated   bool          `json:"output_truncated,omitempty"`
	ResumedFrom *Origin       `json:"resumed_from,omitempty"`
	// PreviousWorkspace, on a resumed or forked session's origin (step
	// 0), is the workspace snapshot taken just before it was restored: to
	// undo the restore. Retention keeps it with the session.
	PreviousWorkspace string `json:"previous_workspace,omitempty"`
	// RecordError says what part of recording failed (snapshot, ...).
	RecordError string `json:"record_error,omitempty"`
}

// Origin is where a resumed or forked session started.
type Origin struct {
	Session string `json:"session"`
	Step    int    `json:"step"`
	Fork    bool   `json:"fork"`
}

// Problem is a line of a log that could not be read.
type Problem struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Reason) }

// LogPath is the replay log of session in workspace.
func LogPath(workspace, sessionID string) string {
	return filepath.Join(workspace, Dir, sessionID+".jsonl")
}

// Caps on what is read of a store file: sandbox code can write the store,
// so any of its files can be huge (a sparse file costs it nothing). They
// are variables for the tests.
var (
	// maxLogBytes is what is read of one replay log.
	maxLogBytes int64 = 1 << 30
	// maxLogLine is the longest line of a log that is parsed; a longer one
	// is skipped and reported.
	maxLogLine = 64 << 20
	// maxStateInfo is the largest state sidecar that is read.
	maxStateInfo int64 = 16 << 20
)

// Log is one session's replay log. Every access opens the workspace and
// reaches the log below it without following a symlink (sdk/nofollow): a
// sandbox can replace the log, or the store directory, with a symlink to
// any file the user can write at any moment.
type Log struct {
	workspace string
	rel       string // the log's path in the workspace
	path      string
	mu        sync.Mutex
	// wrap, when set (tests), is what records are written through.
	wrap func(*os.File) logFile
}

// OpenLog returns the log of session in workspace (created on first Append).
func OpenLog(workspace, sessionID string) (*Log, error) {
	if err := session.ValidateID(sessionID); err != nil {
		return nil, err
	}
	return &Log{workspace: workspace, rel: Dir + "/" + sessionID + ".jsonl", path: LogPath(workspace, sessionID)}, nil
}

// Path is the log file.
func (l *Log) Path() string { return l.path }

// logFile is what Append writes a record through: the log's *os.File, or
// a test's wrapper injecting short writes.
type logFile interface {
	Write(b []byte) (int, error)
	Truncate(size int64) error
	Sync() error
}

// Append writes e as one line, whole or not at all, and fsyncs it before
// returning (durability: fsync per record, see the package doc).
//
// The line is one write(2) of the full record under an exclusive flock of
// the log (another process appending to the same log waits). A short
// write or a failed write or fsync (a full disk, an I/O error) truncates
// the log back to its size before the append, so no partial record
// remains, and returns the error. If an earlier writer crashed mid-line,
// the partial line is closed off first so it cannot swallow this one;
// earlier complete lines are never rewritten. The log is opened without
// following a symlink at it or at the store directory (such a log is
// refused, not written through) and must be a regular file.
func (l *Log) Append(e *Entry) error {
	_, err := l.appendN(e)
	return err
}

// appendN is Append, returning how many bytes it added to the log.
func (l *Log) appendN(e *Entry) (int64, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	root, err := nofollow.OpenRoot(l.workspace)
	if err != nil {
		return 0, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	defer root.Close()
	if err := root.MkdirAll(Dir, 0o755); err != nil {
		return 0, storeErr(Dir, err)
	}
	f, fi, err := root.OpenFile(l.rel, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return 0, logErr(l.path, err)
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return 0, logErr(l.path, nofollow.ErrNotRegular)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		return 0, fmt.Errorf("replay log %s: lock: %w", l.path, err)
	}
	// The size under the lock: another process may have appended since
	// the open.
	if fi, err = f.Stat(); err != nil {
		return 0, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	size := fi.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	var w logFile = f
	if l.wrap != nil {
		w = l.wrap(f)
	}
	if err := writeRecord(w, b, size); err != nil {
		return 0, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	if size == 0 {
		// A new log: its directory entry must survive a power cut too.
		if err := syncDir(root, Dir); err != nil {
			return 0, fmt.Errorf("replay log %s: %w", l.path, err)
		}
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	return int64(len(b)), nil
}

// writeRecord writes b in one write at the end of w (opened O_APPEND,
// size bytes long) and fsyncs it. On any failure w is truncated back to
// size, so it ends with the last whole record, and the error says what
// was lost.
func writeRecord(w logFile, b []byte, size int64) error {
	n, err := w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = w.Sync()
		n = len(b)
	}
	if err == nil {
		return nil
	}
	if n > 0 {
		err = fmt.Errorf("record not written (%d of %d bytes written, removed again): %w", n, len(b), err)
	} else {
		err = fmt.Errorf("record not written: %w", err)
	}
	if terr := w.Truncate(size); terr != nil {
		return errors.Join(err, fmt.Errorf("truncate back to %d bytes: %w (the log may end with a partial record, which readers skip)", size, terr))
	}
	if serr := w.Sync(); serr != nil {
		return errors.Join(err, fmt.Errorf("sync after truncating back: %w", serr))
	}
	return err
}

// flock takes how (LOCK_EX, LOCK_SH) on f, retrying on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// syncDir fsyncs the directory rel of root.
func syncDir(root *nofollow.Dir, rel string) error {
	d, _, err := root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", rel, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", rel, err)
	}
	return nil
}

// logErr explains a log that was refused.
func logErr(path string, err error) error {
	switch {
	case errors.Is(err, nofollow.ErrSymlink):
		return fmt.Errorf("replay log %s is a symlink or below one (the store is not trusted, nothing is followed): %w", path, err)
	case errors.Is(err, nofollow.ErrNotRegular):
		return fmt.Errorf("replay log %s is not a regular file: %w", path, err)
	}
	return fmt.Errorf("replay log %s: %w", path, err)
}

// Read returns the log's entries. Lines that do not parse (a truncated
// last line after a crash, hand edits) are skipped and reported as
// problems; they never make Read fail. The error is for a log that cannot
// be opened: missing (it matches os.ErrNotExist), a symlink or below one,
// or not a regular file.
func (l *Log) Read() ([]Entry, []Problem, error) {
	root, err := nofollow.OpenRoot(l.workspace)
	if err != nil {
		return nil, nil, fmt.Errorf("replay log %s: %w", l.path, err)
	}
	defer root.Close()
	return readLog(root, l.rel)
}

// ReadFile reads a replay log file; see Log.Read. The directory of path is
// opened as given; the file itself is read only if it is a regular file,
// not a symlink.
func ReadFile(path string) ([]Entry, []Problem, error) {
	dir, err := nofollow.OpenRoot(filepath.Dir(path))
	if err != nil {
		return nil, nil, fmt.Errorf("replay log %s: %w", path, err)
	}
	defer dir.Close()
	return readLog(dir, filepath.Base(path))
}

// readLog reads the log rel of dir, reached without following a symlink,
// up to maxLogBytes.
func readLog(dir *nofollow.Dir, rel string) ([]Entry, []Problem, error) {
	f, fi, err := dir.Open(rel)
	if err != nil {
		return nil, nil, logErr(filepath.Join(dir.Name(), rel), err)
	}
	defer f.Close()
	var (
		entries  []Entry
		problems []Problem
	)
	if fi.Size() > maxLogBytes {
		problems = append(problems, Problem{Reason: fmt.Sprintf("the log has %d bytes: only the first %d are read", fi.Size(), maxLogBytes)})
	}
	r := bufio.NewReaderSize(io.LimitReader(f, maxLogBytes), 64<<10)
	for n := 1; ; n++ {
		line, long, err := readLine(r, maxLogLine)
		if long {
			problems = append(problems, Problem{Line: n, Reason: fmt.Sprintf("longer than %d bytes: skipped", maxLogLine)})
		} else if len(bytes.TrimSpace(line)) > 0 {
			complete := bytes.HasSuffix(line, []byte("\n"))
			var e Entry
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				reason := "not valid JSON: " + jerr.Error()
				if !complete {
					reason = "truncated last line (a write was interrupted): " + jerr.Error()
				}
				problems = append(problems, Problem{Line: n, Reason: reason})
			} else {
				entries = append(entries, e)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return entries, append(problems, Problem{Line: n, Reason: "read: " + err.Error()}), nil
		}
	}
	return entries, problems, nil
}

// readLine reads one line of r, its newline included. A line longer than
// max is read to its end but not kept: long is true and line nil.
func readLine(r *bufio.Reader, max int) (line []byte, long bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		if !long {
			if len(line)+len(frag) > max {
				line, long = nil, true
			} else {
				line = append(line, frag...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, long, err
		}
	}
}

// SessionSummary describes one recorded session.
type SessionSummary struct {
	Session     string    `json:"session"`
	Steps       int       `json:"steps"`
	LastStep    int       `json:"last_step"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Backend     string    `json:"backend"`
	Task        string    `json:"task,omitempty"`
	Failed      int       `json:"failed"`
	ResumedFrom *Origin   `json:"resumed_from,omitempty"`
	Problems    []Problem `json:"problems,omitempty"`
}

// List summarises every session recorded in workspace, oldest first.
func List(workspace string) ([]SessionSummary, error) {
	out := []SessionSummary{}
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("replay list: %w", err)
	}
	defer root.Close()
	store, err := root.OpenDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, storeErr(Dir, err)
	}
	defer store.Close()
	infos, err := store.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("replay list: %w", err)
	}
	for _, fi := range infos {
		id, ok := strings.CutSuffix(fi.Name(), ".jsonl")
		if !ok {
			continue
		}
		entries, problems, err := readLog(store, fi.Name())
		if err != nil {
			problems = append(problems, Problem{Reason: err.Error()})
		}
		s := SessionSummary{Session: id, Problems: problems}
		for _, e := range entries {
			if e.ResumedFrom != nil && e.Step == 0 {
				s.ResumedFrom = e.ResumedFrom
			}
			if s.First.IsZero() || e.Time.Before(s.First) {
				s.First = e.Time
			}
			if e.Time.After(s.Last) {
				s.Last = e.Time
			}
			if e.Backend != "" {
				s.Backend = e.Backend
			}
			if e.Task != "" {
				s.Task = e.Task
			}
			if e.Step == 0 {
				continue
			}
			s.Steps++
			if e.Step > s.LastStep {
				s.LastStep = e.Step
			}
			if !e.OK {
				s.Failed++
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out, nil
}

// ErrNoStep is returned for a step that is not in the log.
var ErrNoStep = errors.New("no such step")

// ErrNoSession is returned for a session without a replay log.
var ErrNoSession = errors.New("no replay log for session")

// Show returns the entries of session; step > 0 (or 0 for a resumed
// session's origin) selects one, step < 0 all. When a step appears more
// than once (a log hand-merged or a crashed writer), the last wins.
func Show(workspace, sessionID string, step int) ([]Entry, []Problem, error) {
	l, err := OpenLog(workspace, sessionID)
	if err != nil {
		return nil, nil, err
	}
	entries, problems, err := l.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w %s in %s", ErrNoSession, sessionID, filepath.Join(workspace, Dir))
	}
	if err != nil {
		return nil, nil, err
	}
	if step < 0 {
		return entries, problems, nil
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Step == step {
			return []Entry{entries[i]}, problems, nil
		}
	}
	last := 0
	for _, e := range entries {
		last = max(last, e.Step)
	}
	return nil, problems, fmt.Errorf("%w %d in session %s (it has steps 1..%d)", ErrNoStep, step, sessionID, last)
}
