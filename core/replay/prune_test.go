package replay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// storeBuilder records synthetic sessions in a workspace the way the
// recorder does: workspace snapshot, log line, state pickle and sidecar.
type storeBuilder struct {
	t    *testing.T
	ws   string
	snap *Snapshotter
}

func newStore(t *testing.T) *storeBuilder {
	ws := t.TempDir()
	return &storeBuilder{t: t, ws: ws, snap: NewSnapshotter(ws)}
}

// session records one step of id with the workspace holding files, aged
// by age (log, state files, and the objects and manifest it wrote).
func (b *storeBuilder) session(id string, files map[string]string, age time.Duration) string {
	b.t.Helper()
	names, _ := os.ReadDir(b.ws)
	for _, n := range names {
		if n.Name() != Dir {
			os.RemoveAll(filepath.Join(b.ws, n.Name()))
		}
	}
	for p, c := range files {
		write(b.t, filepath.Join(b.ws, p), c)
	}
	man, _, _, err := b.snap.Snapshot()
	if err != nil {
		b.t.Fatal(err)
	}
	b.step(id, 1, &Entry{WorkspaceSnapshot: man, State: StatePath(id, 1), StateSnapshot: "snap-" + id, Backend: "fake"}, age)
	return man
}

// step appends e as step n of id, with a state pickle if e.State is id's.
func (b *storeBuilder) step(id string, n int, e *Entry, age time.Duration) {
	b.t.Helper()
	e.Step, e.Session, e.OK, e.Time = n, id, true, time.Now().Add(-age)
	l, err := OpenLog(b.ws, id)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := l.Append(e); err != nil {
		b.t.Fatal(err)
	}
	if e.State == StatePath(id, n) {
		write(b.t, filepath.Join(b.ws, e.State), "pickle of "+id)
		write(b.t, filepath.Join(b.ws, e.State+".json"), `{"saved":["x"]}`)
	}
	b.age(age)
}

// age sets the mtime of every store file not aged yet (newer than an
// hour) to now-age.
func (b *storeBuilder) age(age time.Duration) {
	old := time.Now().Add(-age)
	filepath.WalkDir(filepath.Join(b.ws, Dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return nil
		}
		if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) < time.Hour {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

// files lists the store, relative to it.
func (b *storeBuilder) files() []string {
	var out []string
	filepath.WalkDir(filepath.Join(b.ws, Dir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "lock" {
			rel, _ := filepath.Rel(filepath.Join(b.ws, Dir), p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (b *storeBuilder) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(b.ws, Dir, rel))
	return err == nil
}

func storeSize(t *testing.T, ws string) int64 {
	var n int64
	filepath.WalkDir(filepath.Join(ws, Dir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			n += fi.Size()
		}
		return nil
	})
	return n
}

func sessionsOf(rep *PruneReport) []string {
	var out []string
	for _, s := range rep.Sessions {
		out = append(out, s.Session+":"+s.Reason)
	}
	sort.Strings(out)
	return out
}

const day = 24 * time.Hour

func TestPruneByAge(t *testing.T) {
	b := newStore(t)
	shared := "shared by old and young"
	manOld := b.session("old", map[string]string{"shared.txt": shared, "only-old.txt": "old alone"}, 40*day)
	b.session("old2", map[string]string{"b.txt": "old2 alone"}, 35*day)
	manYoung := b.session("young", map[string]string{"shared.txt": shared}, 2*day)
	// A session resumed from old's step 1 refers to old's pickle and
	// workspace: both stay with it.
	b.step("resumed", 0, &Entry{WorkspaceSnapshot: manOld, State: StatePath("old", 1), ResumedFrom: &Origin{Session: "old", Step: 1}}, 3*day)
	// Orphans: a pickle of a session without a log, a crashed write.
	write(t, filepath.Join(b.ws, Dir, "state", "gone-3.pkl"), "orphan")
	write(t, filepath.Join(b.ws, Dir, "objects", ".tmp-123"), "partial")
	b.age(50 * day)

	rep, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(rep); strings.Join(got, " ") != "old2:age old:age" {
		t.Fatalf("removed %v, want old and old2 by age (%+v)", got, rep)
	}
	for _, gone := range []string{"old.jsonl", "old2.jsonl", "state/old2-1.pkl", "state/old2-1.pkl.json", "state/gone-3.pkl", "objects/.tmp-123",
		"objects/" + sha("old2 alone")} {
		if b.exists(gone) {
			t.Errorf("%s survived", gone)
		}
	}
	for _, kept := range []string{"young.jsonl", "resumed.jsonl", "state/old-1.pkl", "state/old-1.pkl.json", "state/young-1.pkl",
		"objects/" + sha(shared), "manifests/" + manOld + ".json", "manifests/" + manYoung + ".json",
		"objects/" + sha("old alone")} { // old's, named by its manifest the resumed session keeps
		if !b.exists(kept) {
			t.Errorf("%s was removed", kept)
		}
	}
	if rep.Kept != 2 || rep.Files == 0 || rep.Bytes == 0 || rep.After != storeSize(t, b.ws)-lockSize(b.ws) {
		t.Errorf("report totals: %+v (store now %d)", rep, storeSize(t, b.ws))
	}
	// Backend snapshots of removed steps are reported for deletion.
	if len(rep.BackendSnapshots) != 2 {
		t.Errorf("backend snapshots: %+v", rep.BackendSnapshots)
	}
	// Kept sessions read whole, and restore.
	if entries, problems, err := Show(b.ws, "young", -1); err != nil || len(problems) != 0 || len(entries) != 1 {
		t.Fatalf("young after prune: %v %v %+v", err, problems, entries)
	}
	if _, err := NewSnapshotter(b.ws).Restore(manOld); err != nil {
		t.Fatalf("restore old's manifest (kept by the resumed session): %v", err)
	}
}

// lockSize is the store lock's size (empty): not counted by tests.
func lockSize(string) int64 { return 0 }

func TestPruneOnlyOldSessionObjectGoes(t *testing.T) {
	b := newStore(t)
	b.session("old", map[string]string{"shared.txt": "both", "mine.txt": "only old"}, 40*day)
	b.session("young", map[string]string{"shared.txt": "both"}, 2*day)
	b.age(50 * day)
	if _, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day}); err != nil {
		t.Fatal(err)
	}
	if b.exists("objects/" + sha("only old")) {
		t.Error("the old session's own object survived")
	}
	if !b.exists("objects/" + sha("both")) {
		t.Error("an object shared with a kept session was removed")
	}
}

func TestPruneMaxSize(t *testing.T) {
	b := newStore(t)
	big := func(c byte) string { return strings.Repeat(string(c), 100<<10) }
	for i, c := range []byte("abcd") {
		b.session(fmt.Sprintf("s%d", i), map[string]string{"big.bin": big(c)}, time.Duration(10-i)*day) // s0 oldest
	}
	before := storeSize(t, b.ws)
	limit := before - 150<<10 // two sessions' objects must go
	rep, err := Prune(t.Context(), b.ws, PruneOptions{MaxSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(rep); strings.Join(got, " ") != "s0:max_size s1:max_size" {
		t.Fatalf("removed %v, want the two oldest", got)
	}
	if after := storeSize(t, b.ws); after > limit || rep.After != after {
		t.Fatalf("store is %d bytes after the pass (report: %d), limit %d", after, rep.After, limit)
	}
	if b.exists("objects/"+sha(big('a'))) || !b.exists("objects/"+sha(big('d'))) {
		t.Fatal("wrong objects removed")
	}
}

func TestPruneDryRunRemovesNothing(t *testing.T) {
	b := newStore(t)
	b.session("old", map[string]string{"a.txt": "a"}, 40*day)
	b.session("young", map[string]string{"b.txt": "b"}, 2*day)
	write(t, filepath.Join(b.ws, Dir, "state", "gone-1.pkl"), "orphan")
	b.age(50 * day)
	before := b.files()
	dry, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := b.files(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("dry run changed the store:\nbefore %v\nafter  %v", before, after)
	}
	real, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Sessions) != 1 || dry.Files != real.Files || dry.Bytes != real.Bytes || dry.Objects != real.Objects || dry.Manifests != real.Manifests {
		t.Fatalf("dry run said %+v, the pass did %+v", dry, real)
	}
}

func TestPruneNeverRemovesLiveRecentOrYoungFiles(t *testing.T) {
	b := newStore(t)
	b.session("live", map[string]string{"a.txt": "live's"}, 40*day)
	b.session("idle", map[string]string{"b.txt": "idle's"}, 40*day)
	// Written to 10 minutes ago although its entries are old.
	b.session("active", map[string]string{"d.txt": "active's"}, 40*day)
	recent := time.Now().Add(-10 * time.Minute)
	os.Chtimes(filepath.Join(b.ws, Dir, "active.jsonl"), recent, recent)
	// A snapshot taken just now whose log line is not written yet: its
	// manifest and objects are young and named by no log.
	os.WriteFile(filepath.Join(b.ws, "c.txt"), []byte("in flight"), 0o644)
	pending, _, _, err := NewSnapshotter(b.ws).Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	rep, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day, MaxSize: 1, Live: func(id string) bool { return id == "live" }})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionsOf(rep); strings.Join(got, " ") != "idle:age" {
		t.Fatalf("removed %v, want only idle", got)
	}
	for _, kept := range []string{"live.jsonl", "active.jsonl", "manifests/" + pending + ".json", "objects/" + sha("in flight"), "objects/" + sha("live's")} {
		if !b.exists(kept) {
			t.Errorf("%s was removed", kept)
		}
	}
}

// A snapshot reusing an old manifest and objects that only pruned
// sessions referred to gets them back: the sweep keeps a manifest touched
// since its scan, and the snapshotter re-stores objects gone from under
// its cache.
func TestSnapshotAfterPruneStoresWhatWasSwept(t *testing.T) {
	b := newStore(t)
	b.session("old", map[string]string{"keep.txt": "unchanged for months"}, 40*day)
	b.age(50 * day)
	if _, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day}); err != nil {
		t.Fatal(err)
	}
	if b.exists("objects/" + sha("unchanged for months")) {
		t.Fatal("setup: the object was not swept")
	}
	// b.snap cached keep.txt's hash when old was recorded.
	id, man, _, err := b.snap.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != 1 || !b.exists("objects/"+sha("unchanged for months")) {
		t.Fatalf("the snapshot refers to an object it did not store again: %+v", man)
	}
	if _, err := NewSnapshotter(b.ws).Restore(id); err != nil {
		t.Fatal(err)
	}
}

func sha(s string) string {
	h, _, _ := hashReader(strings.NewReader(s))
	return h
}

// Hibernation checkpoints (<session>-hibernated.pkl) go with their
// session; one without a log goes once older than OlderThan, not before.
func TestPruneHibernationCheckpoints(t *testing.T) {
	b := newStore(t)
	b.session("old", map[string]string{"a.txt": "a"}, 40*day)
	b.session("young", map[string]string{"b.txt": "b"}, 2*day)
	for id, age := range map[string]time.Duration{"old": 40 * day, "young": 2 * day, "nolog-recent": 2 * day, "nolog-old": 40 * day} {
		p := filepath.Join(b.ws, HibernationPath(id))
		write(t, p, "checkpoint")
		write(t, p+".json", "{}")
		at := time.Now().Add(-age)
		os.Chtimes(p, at, at)
		os.Chtimes(p+".json", at, at)
	}
	b.age(50 * day)
	if _, err := Prune(t.Context(), b.ws, PruneOptions{OlderThan: 30 * day}); err != nil {
		t.Fatal(err)
	}
	for id, kept := range map[string]bool{"old": false, "young": true, "nolog-recent": true, "nolog-old": false} {
		rel := strings.TrimPrefix(HibernationPath(id), Dir+"/")
		if b.exists(rel) != kept || b.exists(rel+".json") != kept {
			t.Errorf("checkpoint of %s: exists %v, want %v", id, b.exists(rel), kept)
		}
	}
}
