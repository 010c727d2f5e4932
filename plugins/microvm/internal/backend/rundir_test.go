package backend

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// fakeVM starts a process standing in for a VMM (its command line carries
// the VM's marker, as a real VMM's does) in <dir>/<id>, recording the
// session it serves ("" for a pooled VM).
func fakeVM(t *testing.T, dir, id, session string) *exec.Cmd {
	t.Helper()
	vdir := filepath.Join(dir, id)
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "300")
	cmd.Args[0] = vmm.Marker(id)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	// Reaped by the goroutine above, so a killed one is gone for kill(0).
	if err := os.WriteFile(filepath.Join(vdir, vmm.PidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if session != "" {
		if err := writeVMRecord(vdir, session); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

func running(c *exec.Cmd) bool { return syscall.Kill(c.Process.Pid, 0) == nil }

// deadOwner makes the run dir of a dead plugin process (no lock held)
// serving core (nil: this test's own core, as a restarted plugin's).
func deadOwner(t *testing.T, root, id string, core *coreRecord) string {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if core == nil {
		if err := writeCoreRecord(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	raw, _ := json.Marshal(core)
	if err := os.WriteFile(filepath.Join(dir, coreRecordFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The grace path: a dead plugin's pooled VM goes at the first sweep, its
// session VM (its core lives) only once the grace has passed, and then
// the run dir, marker and lock go too.
func TestSweepKeepsSessionVMsForTheGrace(t *testing.T) {
	root := t.TempDir()
	dir := deadOwner(t, root, "4242-abcdefghijkl", nil)
	pooled := fakeVM(t, dir, "aaaaaaaaaaa1", "")
	sess := fakeVM(t, dir, "aaaaaaaaaaa2", "s1")
	const grace = 2 * time.Second
	n, next := sweepRoot(root, grace, hclog.NewNullLogger())
	if n != 0 || next <= 0 || next > grace {
		t.Fatalf("first sweep: removed %d, next %s; want 0 removed and a re-sweep within %s", n, next, grace)
	}
	// The grace runs from the marker the first sweep wrote. Its mtime comes
	// from the kernel's coarse clock, a few ms behind time.Now, so the
	// test measures from it, not from a time.Now taken before the sweep.
	mark, err := os.Stat(orphanMarker(root, filepath.Base(dir)))
	if err != nil {
		t.Fatalf("grace marker: %v", err)
	}
	start := mark.ModTime()
	waitUntil(t, "the pooled VM to be killed", 5*time.Second, func() bool { return !running(pooled) })
	if !running(sess) {
		t.Fatal("the session VM was killed before the grace ended")
	}
	waitUntil(t, "a sweep after the grace to remove the session VM", 15*time.Second, func() bool {
		sweepRoot(root, grace, hclog.NewNullLogger())
		return !running(sess)
	})
	if took := time.Since(start); took < grace {
		t.Fatalf("the session VM went after %s, before the grace of %s", took, grace)
	}
	waitUntil(t, "the run root to be empty", 5*time.Second, func() bool {
		ents, _ := os.ReadDir(root)
		return len(ents) == 0
	})
}

// A session VM whose core is gone cannot be recovered: it goes at once.
func TestSweepRemovesVMsOfADeadCore(t *testing.T) {
	root := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := deadOwner(t, root, "4243-abcdefghijkl", &coreRecord{Pid: gone.Process.Pid, Start: "1"})
	sess := fakeVM(t, dir, "bbbbbbbbbbb1", "s1")
	if n, next := sweepRoot(root, time.Hour, hclog.NewNullLogger()); n != 1 || next != 0 {
		t.Fatalf("sweep: removed %d, next %s; want 1 and none kept", n, next)
	}
	waitUntil(t, "the VM to be killed", 5*time.Second, func() bool { return !running(sess) })
}

// The explicit hand-over: RecoverSessions' takeover moves the VMs of the
// sessions asked for into the new plugin's run dir and kills the rest at
// once (no grace); a dead plugin of another core is left to the sweep.
func TestHandOver(t *testing.T) {
	root := t.TempDir()
	runDir := filepath.Join(root, "4244-abcdefghijkl")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := deadOwner(t, root, "4245-abcdefghijkl", nil)
	pooled := fakeVM(t, dir, "ccccccccccc1", "")
	wanted := fakeVM(t, dir, "ccccccccccc2", "s1")
	unwanted := fakeVM(t, dir, "ccccccccccc3", "s2")
	other := deadOwner(t, root, "4246-abcdefghijkl", &coreRecord{Pid: os.Getpid(), Start: "not this one"})
	theirs := fakeVM(t, other, "ccccccccccc4", "s1")

	found, err := handOver(runDir, map[string]bool{"s1": true}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(runDir, "ccccccccccc2"); len(found) != 1 || found["s1"] != want {
		t.Fatalf("handed over %v, want s1 at %s", found, want)
	}
	if readVMRecord(found["s1"]) != "s1" || !running(wanted) {
		t.Fatal("the wanted VM was not moved intact")
	}
	waitUntil(t, "the other VMs of the dead plugin to be killed", 5*time.Second, func() bool {
		return !running(pooled) && !running(unwanted)
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the dead plugin's run dir is still there: %v", err)
	}
	if !running(theirs) {
		t.Fatal("another core's VM was killed by the hand-over")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("another core's run dir: %v", err)
	}
}
