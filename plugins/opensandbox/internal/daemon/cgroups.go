package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// PrepareCgroups makes a hybrid cgroup host (cgroup v1 controllers plus a
// cgroup2 hierarchy at /sys/fs/cgroup/unified) one that crun accepts: a
// controller the kernel left on the cgroup2 side because nothing mounted it
// as v1 (typically hugetlb) gets its own v1 hierarchy, as a complete v1 set-up
// (e.g. Debian's cgroupfs-mount) would have. Nothing else changes; on
// cgroup2-only and v1-only hosts it does nothing. A controller in use on
// the cgroup2 side cannot move; that is logged and runc is used instead.
func PrepareCgroups(log hclog.Logger) {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return // cgroup2 only
	}
	b, err := os.ReadFile(filepath.Join(root, "unified", "cgroup.controllers"))
	if err != nil {
		return // no cgroup2 hierarchy
	}
	for _, c := range strings.Fields(string(b)) {
		dir := filepath.Join(root, c)
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
