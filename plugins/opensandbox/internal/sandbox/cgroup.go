package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupParent is where every container's cgroup is created (cgroupfs
// driver: the same relative path in each hierarchy).
const cgroupParent = "/mcpruntime-opensandbox"

const cgroupRoot = "/sys/fs/cgroup"

// unifiedCgroups reports a cgroup v2 only host.
func unifiedCgroups() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// cgroup addresses one container's cgroup. Limits of a pooled container
// are changed by writing its cgroup files directly: the round trip through
// the shim and `runc update` would cost tens of milliseconds per claim.
type cgroup struct {
	path string // relative, e.g. /mcpruntime-opensandbox/<id>
	v2   bool
}

func (c cgroup) file(controller, name string) string {
	if c.v2 {
		return filepath.Join(cgroupRoot, c.path, name)
	}
	return filepath.Join(cgroupRoot, controller, c.path, name)
}

func writeFile(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	return nil
}

// limits are the resource bounds of a container.
type limits struct {
	memory int64 // bytes
	pids   int64
	cpu    float64 // cores
}

const cpuPeriod = 100000

// set applies l (memory is written in the order the kernel accepts for the
// direction of the change).
func (c cgroup) set(old, l limits) error {
	var errs []error
	if l.memory != old.memory && l.memory > 0 {
		if c.v2 {
			errs = append(errs, writeFile(c.file("memory", "memory.max"), strconv.FormatInt(l.memory, 10)))
			if _, err := os.Stat(c.file("memory", "memory.swap.max")); err == nil {
				errs = append(errs, writeFile(c.file("memory", "memory.swap.max"), "0"))
			}
		} else {
			mem := c.file("memory", "memory.limit_in_bytes")
			sw := c.file("memory", "memory.memsw.limit_in_bytes")
			v := strconv.FormatInt(l.memory, 10)
			_, swErr := os.Stat(sw)
			if l.memory < old.memory {
				errs = append(errs, writeFile(mem, v))
				if swErr == nil {
					errs = append(errs, writeFile(sw, v))
				}
			} else {
				if swErr == nil {
					errs = append(errs, writeFile(sw, v))
				}
				errs = append(errs, writeFile(mem, v))
			}
		}
	}
	if l.pids != old.pids && l.pids > 0 {
		errs = append(errs, writeFile(c.file("pids", "pids.max"), strconv.FormatInt(l.pids, 10)))
	}
	if l.cpu != old.cpu && l.cpu > 0 {
		quota := int64(l.cpu * cpuPeriod)
		if c.v2 {
			errs = append(errs, writeFile(c.file("cpu", "cpu.max"), fmt.Sprintf("%d %d", quota, cpuPeriod)))
		} else {
			errs = append(errs, writeFile(c.file("cpu", "cpu.cfs_quota_us"), strconv.FormatInt(quota, 10)))
		}
	}
	return errors.Join(errs...)
}

// procs lists the processes in the container's cgroup.
func (c cgroup) procs() ([]int, error) {
	b, err := os.ReadFile(c.file("pids", "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// killAllBut SIGKILLs every process of the container except init and the
// kernel (pid keep inside the container): what is left of code stopped by
// a timeout, e.g. a fork bomb's children, which would otherwise keep
// running. It repeats until nothing else is left, since processes can fork
// while being killed.
func (c cgroup) killAllBut(keep int) int {
	killed := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		pids, err := c.procs()
		if err != nil {
			return killed
		}
		others := 0
		for _, pid := range pids {
			if inner, zombie := nsPid(pid); inner != 0 && inner != 1 && inner != keep && !zombie {
				others++
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
		if others == 0 {
			return killed
		}
		time.Sleep(5 * time.Millisecond)
	}
	return killed
}

// oomKills is how often the memory limit killed a process here.
func (c cgroup) oomKills() int {
	name := "memory.oom_control"
	if c.v2 {
		name = "memory.events"
	}
	b, err := os.ReadFile(c.file("memory", name))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// nsPid is a host process's pid in its innermost pid namespace (0 if
// gone) and whether it is a zombie (dead, waiting to be reaped).
func nsPid(pid int) (inner int, zombie bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "State:"); ok {
			zombie = strings.HasPrefix(strings.TrimSpace(rest), "Z")
		}
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				inner, _ = strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return inner, zombie
}

// procParent reads a host process's parent pid and start time (fields 4
// and 22 of /proc/PID/stat).
func procParent(pid int) (ppid int, start uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b)[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	return ppid, start, err1 == nil && err2 == nil
}
