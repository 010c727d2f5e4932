package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

// Retention removes whole sessions from the store: a session's log, the
// state pickles only it refers to, and then, by mark and sweep, every
// workspace manifest no kept log refers to and every object no kept
// manifest names. A session's age is the time since its log was last
// written (its mtime). Never removed: sessions live in the manager (Live),
// sessions written to within MinIdle (they may be live in another process
// sharing the workspace), and files newer than the pass start minus Grace
// (a snapshot or state save in progress whose log line is not written yet).

// Retention defaults.
const (
	// DefaultMinIdle protects recently active sessions.
	DefaultMinIdle = time.Hour
	// DefaultGrace protects recently written store files not referenced
	// yet: the gap between a workspace snapshot and its log line (a
	// backend snapshot in between takes up to 2 minutes).
	DefaultGrace = 10 * time.Minute
)

// PruneOptions select what Prune removes.
type PruneOptions struct {
	// OlderThan removes sessions whose log was last written longer ago;
	// 0: no age limit.
	OlderThan time.Duration
	// MaxSize then removes the least recently written sessions until the
	// store (every file under .replay) fits; 0: no cap.
	MaxSize int64
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Live reports sessions that must be kept whatever their age (live in
	// a manager); nil: none.
	Live func(id string) bool
	// MinIdle and Grace: see the package's retention notes; 0 takes the
	// defaults, a negative value means none (tests).
	MinIdle time.Duration
	Grace   time.Duration
	// Now is the pass's clock; zero: time.Now().
	Now time.Time
}

// BackendSnapshotRef is a backend snapshot a removed step recorded.
type BackendSnapshotRef struct {
	Backend string `json:"backend"`
	ID      string `json:"snapshot"`
	Session string `json:"session"`
	Step    int    `json:"step"`
}

// PrunedSession is a session Prune removed (or would remove).
type PrunedSession struct {
	Session   string    `json:"session"`
	LastWrite time.Time `json:"last_write"`
	// Reason is "age" (older than OlderThan) or "max_size".
	Reason string `json:"reason"`
	Steps  int    `json:"steps"`
	// Files and Bytes are its log and the state files only it used.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// PruneReport says what a pass removed (or, with DryRun, would remove).
type PruneReport struct {
	DryRun   bool            `json:"dry_run"`
	Sessions []PrunedSession `json:"sessions"`
	// Kept is how many sessions remain.
	Kept int `json:"kept"`
	// Manifests, Objects and OtherFiles are the unreferenced workspace
	// manifests and objects, and stale temporary or orphaned state files,
	// removed besides the sessions' own; SweptBytes their size.
	Manifests  int   `json:"manifests"`
	Objects    int   `json:"objects"`
	OtherFiles int   `json:"other_files"`
	SweptBytes int64 `json:"swept_bytes"`
	// Files and Bytes are the totals removed.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// StoreBytes is the store's size before the pass; After after it.
	StoreBytes int64 `json:"store_bytes"`
	After      int64 `json:"after_bytes"`
	// BackendSnapshots are backend snapshots recorded by removed steps
	// and by no kept one: the caller deletes them in their backends.
	BackendSnapshots []BackendSnapshotRef `json:"backend_snapshots,omitempty"`
	// Errors are files that could not be removed or read; the pass goes on.
	Errors     []string `json:"errors,omitempty"`
	DurationMs float64  `json:"duration_ms"`
}

// storeFile is one file of the store as listed.
type storeFile struct {
	rel   string
	size  int64
	mtime time.Time
}

// pruneSession is one log of the store.
type pruneSession struct {
	id        string
	log       storeFile
	steps     int
	manifests []string // distinct, in log order
	states    []string // distinct state refs (.replay/state/<x>.pkl)
	snaps     []BackendSnapshotRef
	kept      bool
	reason    string
}

// pruneState is everything one pass knows of the store.
type pruneState struct {
	ws       string
	opts     PruneOptions
	start    time.Time
	recent   time.Time // files modified after this are young (Grace)
	sessions map[string]*pruneSession
	order    []*pruneSession // least recently written first

	manifests map[string]storeFile // id → file
	objects   map[string]storeFile // hash → file
	state     map[string][]storeFile
	stateOf   map[string][]string // session → state refs saved for it
	others    []storeFile         // stale temporaries
	total     int64

	manObjects map[string][]string // manifest id → distinct object hashes
	mref       map[string]int      // manifest id → kept sessions referring to it
	oref       map[string]int      // object → live manifests naming it
	sref       map[string]int      // state ref → kept sessions using it
	projected  int64
	rep        *PruneReport
}

// Prune removes old sessions from workspace's replay store as opts say
// and sweeps what no kept session refers to. It stops between sessions
// when ctx is done; what it removed until then is reported.
func Prune(ctx context.Context, workspace string, opts PruneOptions) (*PruneReport, error) {
	p := &pruneState{ws: workspace, opts: opts, start: opts.Now, rep: &PruneReport{DryRun: opts.DryRun, Sessions: []PrunedSession{}}}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	t0 := time.Now()
	defer func() { p.rep.DurationMs = float64(time.Since(t0).Microseconds()) / 1000 }()
	if p.opts.MinIdle == 0 {
		p.opts.MinIdle = DefaultMinIdle
	}
	if p.opts.Grace == 0 {
		p.opts.Grace = DefaultGrace
	}
	p.recent = p.start.Add(-max(p.opts.Grace, 0))
	root, err := nofollow.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("replay prune: %w", err)
	}
	defer root.Close()
	store, err := root.OpenDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return p.rep, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay prune: %w", storeErr(Dir, err))
	}
	defer store.Close()
	if err := p.scan(store); err != nil {
		return nil, fmt.Errorf("replay prune: %w", err)
	}
	p.rep.StoreBytes = p.total
	p.count()
	p.choose()
	if p.opts.DryRun {
		p.dryRun()
	} else {
		p.remove(ctx, root)
	}
	p.rep.After = p.rep.StoreBytes - p.rep.Bytes
	return p.rep, nil
}

// scan lists the store and reads every log.
func (p *pruneState) scan(store *nofollow.Dir) error {
	p.sessions = map[string]*pruneSession{}
	p.manifests, p.objects, p.state = map[string]storeFile{}, map[string]storeFile{}, map[string][]storeFile{}
	infos, err := store.ReadDir()
	if err != nil {
		return err
	}
	for _, fi := range infos {
		f := storeFile{rel: Dir + "/" + fi.Name(), size: fi.Size(), mtime: fi.ModTime()}
		if !fi.IsDir() {
			p.total += f.size
		}
		id, ok := strings.CutSuffix(fi.Name(), ".jsonl")
		if !ok || !fi.Mode().IsRegular() || session.ValidateID(id) != nil {
			continue
		}
		s := &pruneSession{id: id, log: f, kept: true}
		entries, _, err := readLog(store, fi.Name())
		if err != nil {
			p.rep.Errors = append(p.rep.Errors, err.Error())
		}
		seenM, seenS := map[string]bool{}, map[string]bool{}
		for _, e := range entries {
			if e.Step > 0 {
				s.steps++
			}
			for _, m := range []string{e.WorkspaceSnapshot, e.PreviousWorkspace, e.OutputsManifest} {
				if isHash(m) && !seenM[m] {
					seenM[m] = true
					s.manifests = append(s.manifests, m)
				}
			}
			if e.State != "" && !seenS[e.State] {
				seenS[e.State] = true
				s.states = append(s.states, e.State)
			}
			if e.StateSnapshot != "" {
				s.snaps = append(s.snaps, BackendSnapshotRef{Backend: e.Backend, ID: e.StateSnapshot, Session: id, Step: e.Step})
			}
		}
		p.sessions[id] = s
		p.order = append(p.order, s)
	}
	sort.SliceStable(p.order, func(i, j int) bool { return p.order[i].log.mtime.Before(p.order[j].log.mtime) })
	list := func(rel string, each func(fi fs.FileInfo, f storeFile)) error {
		d, err := store.OpenDir(strings.TrimPrefix(rel, Dir+"/"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return storeErr(rel, err)
		}
		defer d.Close()
		infos, err := d.ReadDir()
		if err != nil {
			return err
		}
		for _, fi := range infos {
			if fi.IsDir() {
				continue
			}
			f := storeFile{rel: rel + "/" + fi.Name(), size: fi.Size(), mtime: fi.ModTime()}
			p.total += f.size
			each(fi, f)
		}
		return nil
	}
	stale := func(fi fs.FileInfo, f storeFile) bool {
		if strings.HasPrefix(fi.Name(), ".tmp-") {
			if f.mtime.Before(p.recent) {
				p.others = append(p.others, f)
			}
			return true
		}
		return false
	}
	if err := list(manifestsRel, func(fi fs.FileInfo, f storeFile) {
		if id, ok := strings.CutSuffix(fi.Name(), ".json"); ok && isHash(id) {
			p.manifests[id] = f
		} else {
			stale(fi, f)
		}
	}); err != nil {
		return err
	}
	if err := list(objectsRel, func(fi fs.FileInfo, f storeFile) {
		if isHash(fi.Name()) {
			p.objects[fi.Name()] = f
		} else {
			stale(fi, f)
		}
	}); err != nil {
		return err
	}
	p.stateOf = map[string][]string{}
	return list(Dir+"/state", func(fi fs.FileInfo, f storeFile) {
		if ref, ok := stateRef(fi.Name()); ok {
			if _, known := p.state[ref]; !known {
				id := sessionOfState(ref)
				p.stateOf[id] = append(p.stateOf[id], ref)
			}
			p.state[ref] = append(p.state[ref], f)
		} else {
			stale(fi, f)
		}
	})
}

// stateRef is the state ref (.replay/state/<session>-<n>.pkl) a file of
// the state directory belongs to: the pickle, its sidecar, or the pickle's
// temporary.
func stateRef(name string) (string, bool) {
	base := name
	for _, suf := range []string{".pkl.json", ".pkl.tmp", ".pkl"} {
		if b, ok := strings.CutSuffix(name, suf); ok {
			base = b
			break
		}
	}
	if base == name {
		return "", false
	}
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", false
	}
	if _, err := strconv.Atoi(base[i+1:]); err != nil && base[i+1:] != hibernatedSuffix {
		return "", false
	}
	return Dir + "/state/" + base + ".pkl", true
}

// hibernatedSuffix ends the state ref of a hibernation checkpoint
// (<session>-hibernated.pkl, hibernate.go): it goes with its session's
// log, and without one only once older than OlderThan.
const hibernatedSuffix = "hibernated"

// youngState reports whether the state files of ref are too recent to sweep.
func (p *pruneState) youngState(ref string, files []storeFile) bool {
	limit := p.recent
	if strings.HasSuffix(ref, "-"+hibernatedSuffix+".pkl") {
		if p.opts.OlderThan <= 0 {
			return true
		}
		limit = p.start.Add(-p.opts.OlderThan)
	}
	for _, f := range files {
		if !f.mtime.Before(limit) {
			return true
		}
	}
	return false
}

// sessionOfState is the session a state ref was saved for.
func sessionOfState(ref string) string {
	base := strings.TrimSuffix(strings.TrimPrefix(ref, Dir+"/state/"), ".pkl")
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		return base[:i]
	}
	return ""
}

// count sets the reference counts with every session kept, and the
// store's projected size after a sweep of what nothing refers to.
func (p *pruneState) count() {
	p.manObjects, p.mref, p.oref, p.sref = map[string][]string{}, map[string]int{}, map[string]int{}, map[string]int{}
	for id, f := range p.manifests {
		if !f.mtime.Before(p.recent) {
			p.mref[id]++ // young: kept whoever refers to it
		}
	}
	for h, f := range p.objects {
		if !f.mtime.Before(p.recent) {
			p.oref[h]++
		}
	}
	for ref, files := range p.state {
		if p.youngState(ref, files) {
			p.sref[ref]++
		}
	}
	for _, s := range p.order {
		for _, m := range s.manifests {
			p.mref[m]++
		}
		for _, ref := range p.sessionStates(s) {
			p.sref[ref]++
		}
	}
	for id, n := range p.mref {
		if n > 0 {
			for _, h := range p.objectsOf(id) {
				p.oref[h]++
			}
		}
	}
	p.projected = 0
	for _, s := range p.order {
		p.projected += s.log.size
	}
	for id, f := range p.manifests {
		if p.mref[id] > 0 {
			p.projected += f.size
		}
	}
	for h, f := range p.objects {
		if p.oref[h] > 0 {
			p.projected += f.size
		}
	}
	for ref, files := range p.state {
		if p.sref[ref] > 0 {
			for _, f := range files {
				p.projected += f.size
			}
		}
	}
}

// sessionStates are the state refs s keeps: those its log names and those
// saved for it (a save whose line is lost, a checkpoint).
func (p *pruneState) sessionStates(s *pruneSession) []string {
	out := append([]string(nil), s.states...)
	seen := map[string]bool{}
	for _, r := range out {
		seen[r] = true
	}
	for _, ref := range p.stateOf[s.id] {
		if !seen[ref] {
			out = append(out, ref)
			seen[ref] = true
		}
	}
	return out
}

// objectsOf reads manifest id once and returns the objects it names; an
// unreadable manifest names none.
func (p *pruneState) objectsOf(id string) []string {
	if hs, ok := p.manObjects[id]; ok {
		return hs
	}
	var hs []string
	if _, ok := p.manifests[id]; ok {
		b, err := readManifest(p.ws, id)
		var m Manifest
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			p.rep.Errors = append(p.rep.Errors, fmt.Sprintf("manifest %s: %v (its objects are not counted as used)", short12(id), err))
		}
		seen := map[string]bool{}
		for _, f := range m.Files {
			if f.Type == "file" && isHash(f.Hash) && !seen[f.Hash] {
				seen[f.Hash] = true
				hs = append(hs, f.Hash)
			}
		}
	}
	p.manObjects[id] = hs
	return hs
}

// drop removes s from the kept sessions, updating the counts and the
// projected size.
func (p *pruneState) drop(s *pruneSession, reason string) {
	s.kept, s.reason = false, reason
	p.projected -= s.log.size
	for _, m := range s.manifests {
		p.mref[m]--
		if p.mref[m] != 0 {
			continue
		}
		if f, ok := p.manifests[m]; ok {
			p.projected -= f.size
		}
		for _, h := range p.objectsOf(m) {
			p.oref[h]--
			if p.oref[h] == 0 {
				p.projected -= p.objects[h].size
			}
		}
	}
	for _, ref := range p.sessionStates(s) {
		p.sref[ref]--
		if p.sref[ref] == 0 {
			for _, f := range p.state[ref] {
				p.projected -= f.size
			}
		}
	}
}

// protected reports whether s must be kept whatever the limits say.
func (p *pruneState) protected(s *pruneSession) bool {
	if p.opts.Live != nil && p.opts.Live(s.id) {
		return true
	}
	return p.start.Sub(s.log.mtime) < p.opts.MinIdle
}

// choose picks the sessions to remove: too old, then, least recently
// written first, until the store fits MaxSize.
func (p *pruneState) choose() {
	if p.opts.OlderThan > 0 {
		for _, s := range p.order {
			if !p.protected(s) && p.start.Sub(s.log.mtime) > p.opts.OlderThan {
				p.drop(s, "age")
			}
		}
	}
	if p.opts.MaxSize > 0 {
		for _, s := range p.order {
			if p.projected <= p.opts.MaxSize {
				break
			}
			if s.kept && !p.protected(s) {
				p.drop(s, "max_size")
			}
		}
	}
}

// undrop keeps s after all (written to since the scan, or its log could
// not be removed).
func (p *pruneState) undrop(s *pruneSession) {
	s.kept, s.reason = true, ""
	for _, m := range s.manifests {
		p.mref[m]++
		if p.mref[m] == 1 {
			for _, h := range p.objectsOf(m) {
				p.oref[h]++
			}
		}
	}
	for _, ref := range p.sessionStates(s) {
		p.sref[ref]++
	}
}

// dropped are the sessions chosen for removal, least recently written
// first.
func (p *pruneState) dropped() []*pruneSession {
	var out []*pruneSession
	for _, s := range p.order {
		if !s.kept {
			out = append(out, s)
		}
	}
	return out
}

// sessionReport is the report line of dropped session s; its own files
// are its log and the state files no kept session uses.
func (p *pruneState) sessionReport(s *pruneSession) (PrunedSession, []storeFile) {
	ps := PrunedSession{Session: s.id, LastWrite: s.log.mtime.UTC(), Reason: s.reason, Steps: s.steps}
	files := []storeFile{s.log}
	for _, ref := range p.sessionStates(s) {
		if p.sref[ref] == 0 {
			files = append(files, p.state[ref]...)
			p.sref[ref] = -1 // counted: not swept again as an orphan
		}
	}
	for _, f := range files {
		ps.Files++
		ps.Bytes += f.size
	}
	return ps, files
}

// sweepable are the unreferenced files besides the sessions' own: state
// of no kept session, manifests no kept log names, objects no kept
// manifest names, stale temporaries; young files are kept (Grace).
func (p *pruneState) sweepable(alive map[string]bool) (states, manifests, objects []storeFile) {
	for ref, files := range p.state {
		if p.sref[ref] == 0 {
			states = append(states, files...)
		}
	}
	for id, f := range p.manifests {
		if p.mref[id] == 0 && f.mtime.Before(p.recent) {
			manifests = append(manifests, f)
		}
	}
	for h, f := range p.objects {
		if p.oref[h] == 0 && !alive[h] && f.mtime.Before(p.recent) {
			objects = append(objects, f)
		}
	}
	states = append(states, p.others...)
	return states, manifests, objects
}

// dryRun reports what a pass would remove.
func (p *pruneState) dryRun() {
	for _, s := range p.dropped() {
		ps, _ := p.sessionReport(s)
		p.addSession(ps)
		p.snapshotsOf(s)
	}
	states, manifests, objects := p.sweepable(nil)
	p.addSwept(states, manifests, objects)
}

func (p *pruneState) addSession(ps PrunedSession) {
	p.rep.Sessions = append(p.rep.Sessions, ps)
	p.rep.Files += ps.Files
	p.rep.Bytes += ps.Bytes
}

func (p *pruneState) addSwept(states, manifests, objects []storeFile) {
	p.rep.OtherFiles += len(states)
	p.rep.Manifests += len(manifests)
	p.rep.Objects += len(objects)
	for _, list := range [][]storeFile{states, manifests, objects} {
		for _, f := range list {
			p.rep.Files++
			p.rep.Bytes += f.size
			p.rep.SweptBytes += f.size
		}
	}
	p.rep.Kept = 0
	for _, s := range p.order {
		if s.kept {
			p.rep.Kept++
		}
	}
}

// snapshotsOf adds the backend snapshots of removed session s that no
// kept session recorded too.
func (p *pruneState) snapshotsOf(s *pruneSession) {
	for _, ref := range s.snaps {
		used := false
		for _, k := range p.order {
			if !k.kept {
				continue
			}
			for _, o := range k.snaps {
				if o.ID == ref.ID && o.Backend == ref.Backend {
					used = true
				}
			}
		}
		if !used {
			p.rep.BackendSnapshots = append(p.rep.BackendSnapshots, ref)
		}
	}
}

// remove removes the chosen sessions, then sweeps under the store lock.
func (p *pruneState) remove(ctx context.Context, root *nofollow.Dir) {
	var done []*pruneSession
	for _, s := range p.dropped() {
		if ctx.Err() != nil {
			p.undrop(s)
			continue
		}
		// Written to since the scan: active again, kept.
		if fi, err := root.Lstat(s.log.rel); err != nil || fi.Size() != s.log.size || !fi.ModTime().Equal(s.log.mtime) {
			p.undrop(s)
			continue
		}
		if err := root.Remove(s.log.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.rep.Errors = append(p.rep.Errors, fmt.Sprintf("remove %s: %v", s.log.rel, err))
			p.undrop(s)
			continue
		}
		done = append(done, s)
	}
	for _, s := range done {
		ps, files := p.sessionReport(s)
		p.removeFiles(root, files[1:]) // the log is gone already
		p.addSession(ps)
		p.snapshotsOf(s)
	}
	if ctx.Err() != nil {
		p.addSwept(nil, nil, nil)
		return
	}
	// The sweep: under the store lock, manifests written or touched since
	// the scan (snapshots whose log line is not written yet) are roots too.
	unlock, err := lockStore(root, unix.LOCK_EX, sweepLockWait)
	if err != nil {
		p.rep.Errors = append(p.rep.Errors, "workspace snapshots not swept: "+err.Error())
		states, _, _ := p.sweepable(nil)
		p.removeFiles(root, states)
		p.addSwept(states, nil, nil)
		return
	}
	defer unlock()
	alive := map[string]bool{}
	if d, err := root.OpenDir(manifestsRel); err == nil {
		infos, err := d.ReadDir()
		d.Close()
		if err != nil {
			p.rep.Errors = append(p.rep.Errors, "workspace snapshots not swept: "+err.Error())
			p.addSwept(nil, nil, nil)
			return
		}
		for _, fi := range infos {
			id, ok := strings.CutSuffix(fi.Name(), ".json")
			if !ok || !isHash(id) || fi.ModTime().Before(p.recent) {
				continue
			}
			f := storeFile{rel: manifestsRel + "/" + fi.Name(), size: fi.Size(), mtime: fi.ModTime()}
			if _, known := p.manifests[id]; !known {
				p.manifests[id] = f
				p.mref[id]++ // new: never removed by this pass
			} else {
				p.manifests[id] = f
			}
			for _, h := range p.objectsOf(id) {
				alive[h] = true
			}
		}
	}
	states, manifests, objects := p.sweepable(alive)
	states = p.removeFiles(root, states)
	manifests = p.removeFiles(root, manifests)
	objects = p.removeFiles(root, objects)
	if len(objects) > 0 {
		// Snapshotters drop what they cached as stored (snapshot.go).
		// An empty file: a new inode (and mtime) per sweep.
		err := root.ReplaceFile(sweptRel, 0o644, func(*os.File) error { return nil })
		if err != nil {
			p.rep.Errors = append(p.rep.Errors, "mark the sweep for snapshotters: "+err.Error())
		}
	}
	p.addSwept(states, manifests, objects)
}

// removeFiles removes files and returns those that were removed (or were
// gone already); failures go to the report's errors.
func (p *pruneState) removeFiles(root *nofollow.Dir, files []storeFile) []storeFile {
	out := files[:0:0]
	for _, f := range files {
		if err := root.Remove(f.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.rep.Errors = append(p.rep.Errors, fmt.Sprintf("remove %s: %v", f.rel, err))
			continue
		}
		out = append(out, f)
	}
	return out
}

func short12(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
