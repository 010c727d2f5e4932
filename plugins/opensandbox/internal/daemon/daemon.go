// Package daemon starts the project's private containerd: its own root,
// state, sockets and config, so it never touches a system containerd.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/go-hclog"
)

// Default locations of the private daemon.
const (
	DefaultRoot    = "/var/lib/mcpruntime/containerd"
	DefaultState   = "/run/mcpruntime/containerd"
	DefaultAddress = DefaultState + "/containerd.sock"
)

// Paths of one private daemon.
type Paths struct {
	Root  string // persistent data (content, snapshots)
	State string // runtime state, sockets, pid file
}

// DefaultPaths are used by the Makefile and the plugin's defaults.
func DefaultPaths() Paths { return Paths{Root: DefaultRoot, State: DefaultState} }

// Address is the daemon's gRPC socket.
func (p Paths) Address() string { return filepath.Join(p.State, "containerd.sock") }

func (p Paths) pidFile() string { return filepath.Join(p.State, "containerd.pid") }
func (p Paths) config() string  { return filepath.Join(p.State, "config.toml") }

// LogFile receives the daemon's output.
func (p Paths) LogFile() string { return filepath.Join(p.Root, "containerd.log") }

// Config is the daemon's config file. Plugins this project does not use are
// disabled (CRI would also want CNI; the others need kernel features or
// tools that are absent), and opt gets a private path so nothing lands in
// /opt/containerd.
func (p Paths) Config() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, p.Root, filepath.Join(p.State, "state"), p.Address(), p.Address()+".ttrpc", filepath.Join(p.Root, "opt"))
}

// Answers reports whether a containerd serves address.
func Answers(ctx context.Context, address string) error {
	if _, err := os.Stat(address); err != nil {
		return fmt.Errorf("containerd socket %s: %w", address, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.New(address, client.WithTimeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", address, err)
	}
	defer c.Close()
	if _, err := c.Version(ctx); err != nil {
		return fmt.Errorf("containerd at %s does not answer: %w", address, err)
	}
	return nil
}

// Ensure starts the private daemon unless one already answers on its
// socket, and waits until it does. It is safe to call concurrently and
// repeatedly: a pid file under State names the running daemon.
func Ensure(ctx context.Context, p Paths, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	PrepareCgroups(log)
	if Answers(ctx, p.Address()) == nil {
		log.Debug("private containerd already running", "address", p.Address())
		return nil
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("containerd is not installed (Debian: apt-get install containerd runc, or `make -C plugins/opensandbox deps`): %w", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return fmt.Errorf("runc is not installed (Debian: apt-get install runc): %w", err)
	}
	for _, d := range []string{p.Root, p.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("private containerd: %w", err)
		}
	}
	// One starter at a time: a second caller waits for the first daemon.
	lock, err := os.OpenFile(filepath.Join(p.State, "start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("private containerd: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("private containerd: lock: %w", err)
	}
	if pid := runningPid(p); pid > 0 {
		log.Info("waiting for the private containerd to answer", "pid", pid)
		return waitAnswer(ctx, p, pid)
	}
	if err := os.WriteFile(p.config(), []byte(p.Config()), 0o644); err != nil {
		return fmt.Errorf("private containerd: config: %w", err)
	}
	os.Remove(p.Address()) // stale socket of a dead daemon
	logf, err := os.OpenFile(p.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("private containerd: log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", p.config())
	// Shims inherit containerd's environment and runc/crun inherit theirs.
	// Both runtimes copy their own binary into a sealed memfd and re-exec
	// it on every create, start, kill and delete (the CVE-2019-5736
	// defence: a container must not be able to overwrite the runtime
	// through /proc/self/exe), which cost 3-5 ms per call here. With this
	// variable set they skip the copy only when their binary is on a
	// read-only file system, as the plugin's copies are (see the sandbox
	// package's readOnlyRuntime); any other binary is still copied.
	cmd.Env = append(os.Environ(), "_LIBCONTAINER_CLONED_BINARY=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the daemon outlives whoever started it (make, the
	// plugin) and gets none of their signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while we still run
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("private containerd: pid file: %w", err)
	}
	log.Info("started private containerd", "pid", pid, "address", p.Address(), "log", p.LogFile())
	return waitAnswer(ctx, p, pid)
}

func waitAnswer(ctx context.Context, p Paths, pid int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := Answers(ctx, p.Address())
		if err == nil {
			return nil
		}
		if syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("private containerd (pid %d) exited; see %s: %w", pid, p.LogFile(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private containerd (pid %d) did not answer within 20s; see %s: %w", pid, p.LogFile(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runningPid is the pid from the pid file if that process is a containerd.
func runningPid(p Paths) int {
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "containerd" {
		return 0
	}
	return pid
}

// Stop ends the private daemon named by the pid file (tests, `make
// daemon-stop`). Containers it runs keep running in their shims.
func Stop(p Paths) error {
	pid := runningPid(p)
	if pid == 0 {
		return errors.New("private containerd is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop containerd %d: %w", pid, err)
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			os.Remove(p.pidFile())
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd %d did not stop within 5s", pid)
}
