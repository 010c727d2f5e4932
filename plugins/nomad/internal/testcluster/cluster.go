// Package testcluster starts the plugin's private Nomad cluster (one
// server, two clients on loopback, scripts/cluster.sh) for tests, on ports
// and in a directory of their own, and stops it afterwards.
package testcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster is a running test cluster.
type Cluster struct {
	// Addr is the server's HTTP address.
	Addr string
	Dir  string
	port int
	env  []string
	// attached: started by someone else (Attach), not stopped here.
	attached bool
}

// script is scripts/cluster.sh beside this package's module.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// Binary finds the Nomad agent: NOMAD_BINARY, else the cached build. ok
// is false when there is none (the caller skips, or fails under CI).
func Binary() (string, bool) {
	if p := os.Getenv("NOMAD_BINARY"); p != "" {
		return p, true
	}
	out, err := exec.Command(script("build-nomad.sh"), "--cached").Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// freeBase picks a base port whose cluster ports are all free.
func freeBase() (int, error) {
	for range 50 {
		base := 20000 + rand.IntN(20000)
		ok := true
		for _, off := range []int{0, 1, 2, 10, 11, 12, 20, 21, 22} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+off))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free port range for a test cluster")
}

// Start starts a cluster in dir with the Nomad binary at nomad.
func Start(dir, nomad string) (*Cluster, error) {
	base, err := freeBase()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, port: base, env: append(os.Environ(), "NOMAD_BINARY="+nomad, "NOMAD_CLUSTER_PORT="+strconv.Itoa(base))}
	if err := c.run("start"); err != nil {
		c.Stop()
		return nil, err
	}
	c.Addr = "http://127.0.0.1:" + strconv.Itoa(base)
	return c, nil
}

func (c *Cluster) run(verb string) error {
	cmd := exec.Command(script("cluster.sh"), verb, c.Dir)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster.sh %s: %w\n%s", verb, err, out)
	}
	return nil
}

// Attach uses the running cluster that scripts/cluster.sh started in dir
// (for iterating on tests against `make cluster`); Stop leaves it running.
func Attach(dir, nomad string) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, "addr"))
	if err != nil {
		return nil, fmt.Errorf("no cluster in %s: %w", dir, err)
	}
	addr := strings.TrimSpace(string(b))
	port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if err != nil {
		return nil, fmt.Errorf("cluster address %q: %w", addr, err)
	}
	return &Cluster{Addr: addr, Dir: dir, port: port, attached: true,
		env: append(os.Environ(), "NOMAD_BINARY="+nomad, "NOMAD_CLUSTER_PORT="+strconv.Itoa(port))}, nil
}

// Restart starts the agents that are not running (after KillClient).
func (c *Cluster) Restart() error { return c.run("start") }

// Stop stops the cluster and removes its directory.
func (c *Cluster) Stop() error {
	if c.attached {
		return nil
	}
	return c.run("stop")
}

// KillClient kills client agent i (1 or 2) with SIGKILL, as a crashed
// node; its tasks keep running, as they would on a partitioned node.
func (c *Cluster) KillClient(i int) error {
	b, err := os.ReadFile(filepath.Join(c.Dir, fmt.Sprintf("client%d.pid", i)))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill client %d (pid %d): %w", i, pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !running(pid) {
			return nil
		}
	}
	return fmt.Errorf("client %d (pid %d) did not exit", i, pid)
}

// NodeName is the name of client i.
func NodeName(i int) string { return fmt.Sprintf("mcpruntime-client-%d", i) }

// running reports whether pid is a live process (not gone, not a zombie
// waiting for a parent that may never reap it).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
