//go:build unix

package owner

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child process claims an id in $OWNER_TEST_DIR, prints it and waits to
// be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("OWNER_TEST_DIR"); dir != "" {
		in, err := Claim(dir)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString(in.ID + "\n")
		select {}
	}
	os.Exit(m.Run())
}

func claimInChild(t *testing.T, dir string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "OWNER_TEST_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !ValidID(strings.TrimSpace(line)) {
		t.Fatalf("child claim: %q %v", line, err)
	}
	return strings.TrimSpace(line), cmd
}

func TestClaimReap(t *testing.T) {
	dir := t.TempDir()
	in, err := Claim(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(in.ID) || !strings.HasPrefix(in.ID, strconv.Itoa(os.Getpid())+"-") {
		t.Fatalf("id %q", in.ID)
	}
	if !Alive(dir, in.ID) {
		t.Fatal("own claim not alive")
	}
	called := false
	if dead, err := Reap(dir, in.ID, func() error { called = true; return nil }); dead || err != nil || called {
		t.Fatalf("reap of a live owner: dead=%v err=%v called=%v", dead, err, called)
	}
	if id, err := Find(dir, os.Getpid()); err != nil || id != in.ID {
		t.Fatalf("find: %q %v", id, err)
	}

	// Another process's claim: alive while it runs, dead once killed.
	child, cmd := claimInChild(t, dir)
	if !Alive(dir, child) {
		t.Fatal("child's claim not alive")
	}
	if dead, _ := Reap(dir, child, nil); dead {
		t.Fatal("reaped a live child's claim")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if Alive(dir, child) {
		t.Fatal("a killed child's claim is alive")
	}
	dead, err := Sweep(dir)
	if err != nil || len(dead) != 1 || dead[0] != child {
		t.Fatalf("sweep: %v %v", dead, err)
	}
	if _, err := os.Stat(LockPath(dir, child)); !os.IsNotExist(err) {
		t.Fatalf("dead owner's lock file left: %v", err)
	}
	// An id without a lock file is dead; fn's failure keeps the file.
	if dead, err := Reap(dir, child, func() error { return os.ErrPermission }); !dead || err == nil {
		t.Fatalf("reap of a gone owner: %v %v", dead, err)
	}
	if dead, err := Reap(dir, child, nil); !dead || err != nil {
		t.Fatalf("second reap: %v %v", dead, err)
	}
	if _, err := Reap(dir, "../x", nil); err == nil {
		t.Fatal("reap of a path accepted")
	}

	// A claim that died before it was published is swept too, once it is
	// older than a claim in progress can be; a fresh one is left alone.
	stale := filepath.Join(dir, ".1-abcdefghijkl"+claimSuffix)
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("a fresh claim file was swept")
	}
	old := time.Now().Add(-2 * claimGrace)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("stale claim file left")
	}

	if err := in.Release(); err != nil {
		t.Fatal(err)
	}
	if Alive(dir, in.ID) {
		t.Fatal("released claim alive")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left in owners dir: %v", ents)
	}
}

// Many concurrent claims and sweeps: no live claim is ever reaped.
func TestConcurrentClaims(t *testing.T) {
	dir := t.TempDir()
	deadline := time.Now().Add(2 * time.Second)
	done := make(chan error)
	for range 4 {
		go func() {
			for time.Now().Before(deadline) {
				in, err := Claim(dir)
				if err != nil {
					done <- err
					return
				}
				if dead, err := Reap(dir, in.ID, nil); dead || err != nil {
					done <- os.ErrInvalid
					return
				}
				if _, err := os.Stat(LockPath(dir, in.ID)); err != nil {
					done <- err
					return
				}
				if err := in.Release(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		for time.Now().Before(deadline) {
			Sweep(dir)
		}
	}()
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
