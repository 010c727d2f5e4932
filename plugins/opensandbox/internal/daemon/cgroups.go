package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// Cgroup2Controllers lists the controllers a hybrid cgroup host (cgroup v1
// controllers plus a cgroup2 hierarchy at /sys/fs/cgroup/unified) left on
// its cgroup2 side. crun refuses such a host unless the list is empty. It
// is empty on cgroup2-only and v1-only hosts.
func Cgroup2Controllers() []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return nil // cgroup2 only
	}
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "unified", "cgroup.controllers"))
	if err != nil {
		return nil // no cgroup2 hierarchy
	}
	return strings.Fields(string(b))
}

const cgroupRoot = "/sys/fs/cgroup"

// PrepareCgroups makes a hybrid cgroup host one that crun accepts: a
// controller the kernel left on the cgroup2 side because nothing mounted it
// as v1 (typically hugetlb) gets its own v1 hierarchy, as a complete v1
// set-up (e.g. Debian's cgroupfs-mount) would have. Nothing else changes;
// on cgroup2-only and v1-only hosts it does nothing. A controller in use on
// the cgroup2 side cannot move; that is logged and runc is used instead.
func PrepareCgroups(log hclog.Logger) {
	for _, c := range Cgroup2Controllers() {
		dir := filepath.Join(cgroupRoot, c)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("cannot mount a cgroup v1 hierarchy; runc will be used", "controller", c, "error", err)
			continue
		}
		if err := syscall.Mount("cgroup", dir, "cgroup", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, c); err != nil {
			os.Remove(dir)
			log.Warn("cannot mount a cgroup v1 hierarchy; runc will be used", "controller", c, "error", fmt.Errorf("mount %s: %w", dir, err))
			continue
		}
		log.Info("mounted a cgroup v1 hierarchy for a controller left on cgroup2 (crun needs an empty cgroup2 hierarchy on hybrid hosts)", "controller", c, "path", dir)
	}
}

// UsableCrun finds crun and checks that it can manage this host's cgroups:
// crun refuses hybrid hosts whose cgroup2 hierarchy holds any controller
// (PrepareCgroups, run with the private containerd's start, moves
// such controllers to v1).
func UsableCrun() (string, error) {
	bin, err := exec.LookPath("crun")
	if err != nil {
		return "", errors.New("crun is not installed (apt-get install crun)")
	}
	if c := Cgroup2Controllers(); len(c) > 0 {
		return "", fmt.Errorf("crun refuses this hybrid cgroup host while the cgroup2 hierarchy holds controllers (%s); `mcpruntime-plugin-opensandbox daemon` mounts them as cgroup v1 hierarchies", strings.Join(c, " "))
	}
	return bin, nil
}
