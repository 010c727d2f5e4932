package sandboxtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// The checks of the limits a backend declares in
// Capabilities.EnforcedLimits. Each is sized so that a backend that does
// not enforce the limit fails it on any host the check runs on.

// memoryLimit is the limit the memory check sets; memoryBomb is how much
// it then allocates: well above the limit, and only when the host has that
// much available, so an unenforced limit shows as a successful allocation.
const (
	memoryLimit = 256 << 20
	memoryBomb  = 3 * memoryLimit
	// memorySpare is what the host must have left after the bomb.
	memorySpare = 512 << 20
)

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

func checkMemory(s *Suite) error {
	if err := s.checkEnforced(sdk.LimitMemory); err != nil {
		return err
	}
	avail, err := memAvailable()
	if err != nil {
		return fmt.Errorf("host memory: %w", err)
	}
	if avail < memoryBomb+memorySpare {
		return skip("the host has %d MiB available: too little to allocate %d MiB (more than the %d MiB limit) without risking it", avail>>20, memoryBomb>>20, memoryLimit>>20)
	}
	id, err := s.NewSession(bg(), sdk.Limits{MemoryBytes: memoryLimit})
	if err != nil {
		return err
	}
	n := strconv.Itoa(memoryBomb)
	bombs := []string{
		// Every page written: a limit on resident memory (cgroups) sees it.
		"b = bytearray(" + n + ")\nfor i in range(0, len(b), 4096):\n    b[i] = 1",
		"s = 'x' * " + n,
		"l = [0] * (" + n + " // 8)",
	}
	for _, bomb := range bombs {
		if err := s.expectOK(bg(), id, "before = 'set'", ""); err != nil {
			return err
		}
		out, err := s.Exec(bg(), id, bomb)
		if err != nil {
			return err
		}
		if out.Result.OK() {
			return fmt.Errorf("declared %q but %q allocated %d MiB under a %d MiB limit (the host has %d MiB available)",
				sdk.LimitMemory, clip(bomb), memoryBomb>>20, memoryLimit>>20, avail>>20)
		}
		if out.Result.Message == "" {
			return fmt.Errorf("%q failed without a message: %+v", clip(bomb), out.Result)
		}
		after, err := s.Exec(bg(), id, "print(globals().get('before', '<lost>'))")
		if err != nil {
			return fmt.Errorf("after %q: %w", clip(bomb), err)
		}
		switch {
		case !after.Result.OK():
			return fmt.Errorf("after %q the session fails: %s %q", clip(bomb), after.Result.Message, clip(after.Stderr))
		case after.Stdout == "<lost>\n" && !out.Result.StateLost && !after.Result.StateLost:
			return fmt.Errorf("after %q the session's variables are gone but no result reported state_lost", clip(bomb))
		case after.Stdout != "set\n" && after.Stdout != "<lost>\n":
			return fmt.Errorf("after %q: stdout %q", clip(bomb), after.Stdout)
		}
	}
	return nil
}

// pidsLimit is the limit the pids check sets; pidsTries is how many
// processes it then tries to start.
const (
	pidsLimit = 32
	pidsTries = 256
)

func checkPids(s *Suite) error {
	if err := s.checkEnforced(sdk.LimitPids); err != nil {
		return err
	}
	id, err := s.NewSession(bg(), sdk.Limits{Pids: pidsLimit})
	if err != nil {
		return err
	}
	code := fmt.Sprintf(`import os, time
pids, err = [], None
try:
    for _ in range(%d):
        pid = os.fork()
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    err = e
finally:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
print(len(pids), type(err).__name__ if err else 'none')`, pidsTries)
	out, err := s.Exec(bg(), id, code)
	if err != nil {
		return err
	}
	if !out.Result.OK() {
		return fmt.Errorf("fork probe under Pids=%d failed: %s %q", pidsLimit, out.Result.Message, clip(out.Stderr))
	}
	var started int
	var refusal string
	if _, err := fmt.Sscan(out.Stdout, &started, &refusal); err != nil {
		return fmt.Errorf("fork probe printed %q", clip(out.Stdout))
	}
	if started >= pidsLimit || refusal == "none" {
		return fmt.Errorf("declared %q but a session with Pids=%d started %d processes (fork refused: %s)", sdk.LimitPids, pidsLimit, started, refusal)
	}
	return s.expectOK(bg(), id, "print('after the fork bomb')", "after the fork bomb\n")
}

// cpuMillis is the limit the CPU check sets; cpuShare is the most of an
// unlimited session's work a session under it may do.
const (
	cpuMillis = 200
	cpuShare  = 0.6
)

func checkCPU(s *Suite) error {
	if err := s.checkEnforced(sdk.LimitCPU); err != nil {
		return err
	}
	free, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	limited, err := s.NewSession(bg(), sdk.Limits{CPUMillis: cpuMillis})
	if err != nil {
		return err
	}
	// Work done in a fixed wall time: a limit applied outside the sandbox
	// (a VM's vCPU throttled on the host) shows here even where the
	// sandbox's own clocks cannot see it.
	code := "import time\nn = 0\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end:\n    n += 1\nprint(n)"
	loops := func(id string) (int64, error) {
		out, err := s.Exec(bg(), id, code)
		if err != nil {
			return 0, err
		}
		if !out.Result.OK() {
			return 0, fmt.Errorf("busy loop failed: %s %q", out.Result.Message, clip(out.Stderr))
		}
		return strconv.ParseInt(strings.TrimSpace(out.Stdout), 10, 64)
	}
	// Interleaved, order alternating, best of three each: a moment of
	// load on the host starves neither side's measure alone (best of two
	// let a broken plugin pass on a host with a load average of 40).
	var base, got int64
	for i := range 3 {
		order := []*int64{&base, &got}
		ids := []string{free, limited}
		if i%2 == 1 {
			order[0], order[1], ids[0], ids[1] = order[1], order[0], ids[1], ids[0]
		}
		for j, id := range ids {
			n, err := loops(id)
			if err != nil {
				return err
			}
			*order[j] = max(*order[j], n)
		}
	}
	if base <= 0 {
		return fmt.Errorf("an unlimited busy loop did no work (%d iterations)", base)
	}
	if share := float64(got) / float64(base); share > cpuShare {
		return fmt.Errorf("declared %q but a busy loop under CPUMillis=%d did %d iterations in 1.5 s, %.0f%% of the %d an unlimited session did (best of three each) (want at most %.0f%%)",
			sdk.LimitCPU, cpuMillis, got, 100*share, base, 100*cpuShare)
	}
	return nil
}
