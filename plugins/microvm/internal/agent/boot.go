// Package agent is the guest side of the microVM backend: PID 1 inside the
// VM. It mounts the read-only Python root, loads the virtio modules the
// image ships, opens the channel to the host, runs the sdk kernel as a
// long-lived child process and serves the host's control requests (kernel
// lifecycle, interrupts, workspace sync, RNG reseed after a restore).
package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Paths inside the guest.
const (
	newRoot      = "/newroot"
	rootDevice   = "/dev/vda"
	moduleDir    = "/lib/modules"
	moduleOrder  = "/lib/modules/order"
	workspaceDir = "/workspace"
	libDir       = "/mcpruntime/lib"
	cgroupDir    = "/sys/fs/cgroup/sandbox"
)

func mount(src, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("mkdir %s: %w", target, err)
	}
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", src, target, fstype, err)
	}
	return nil
}

// boot prepares the guest: early file systems, modules, the Python root
// (read-only ext4 on the first virtio disk), writable scratch trees, and a
// cgroup that bounds the kernel's memory and process count. The agent then
// chroots into the Python root; it stays PID 1 throughout.
func boot() error {
	if err := mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		return err
	}
	if err := mount("proc", "/proc", "proc", 0, ""); err != nil {
		return err
	}
	if err := mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return err
	}
	if err := loadModules(); err != nil {
		return err
	}
	root, wsDisk := rootDevice, ""
	if label := cmdlineValue("mcpruntime.wsdisk"); label != "" {
		labels := []string{rootLabel, label}
		slot := cmdlineValue("mcpruntime.wsslot")
		if slot != "" {
			labels = append(labels, slot)
		}
		disks, err := findDisks(20*time.Second, labels...)
		if err != nil {
			return fmt.Errorf("disks: %w", err)
		}
		root, wsDisk = disks[rootLabel], disks[label]
		if slot != "" {
			slotDev = disks[slot]
		}
	} else if err := waitFor(rootDevice, 20*time.Second); err != nil {
		return fmt.Errorf("root disk: %w", err)
	}
	if err := mount(root, newRoot, "ext4", unix.MS_RDONLY, ""); err != nil {
		return err
	}
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(m, newRoot+m, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the root: %w", m, err)
		}
	}
	tmpfs := []struct{ dir, opts string }{{"/tmp", "mode=1777"}, {"/run", "mode=755"}, {libDir, "mode=755"}}
	if wsDisk == "" {
		tmpfs = append(tmpfs, struct{ dir, opts string }{workspaceDir, "mode=777"})
	}
	for _, t := range tmpfs {
		if err := unix.Mount("tmpfs", newRoot+t.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, t.opts); err != nil {
			return fmt.Errorf("tmpfs on %s: %w", t.dir, err)
		}
	}
	if wsDisk != "" {
		// /dev has moved into the new root by now.
		if err := mountWorkspaceDisk(newRoot+wsDisk, newRoot+wsMountTmp, newRoot+workspaceDir); err != nil {
			return err
		}
	}
	if err := unix.Chroot(newRoot); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	_ = mount("devpts", "/dev/pts", "devpts", 0, "")
	_ = os.Symlink("/proc/self/fd", "/dev/fd")
	if err := setupCgroup(); err != nil {
		logf("cgroup limits unavailable: %v", err)
	}
	_ = unix.Sethostname([]byte("sandbox"))
	loopbackUp()
	return nil
}

// loadModules loads the modules the image lists, in dependency order,
// passing parameters given on the kernel command line as `module.key=value`
// (the kernel applies those only to built-in code; modprobe normally does
// this for modules).
func loadModules() error {
	order, err := os.ReadFile(moduleOrder)
	if err != nil {
		return fmt.Errorf("module list: %w", err)
	}
	params := moduleParams()
	for _, name := range strings.Fields(string(order)) {
		path := filepath.Join(moduleDir, name+".ko")
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		err = unix.FinitModule(int(f.Fd()), params[strings.ReplaceAll(name, "-", "_")], 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	return nil
}

func moduleParams() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return out
	}
	for _, f := range strings.Fields(string(b)) {
		key, _, ok := strings.Cut(f, "=")
		mod, _, dotted := strings.Cut(key, ".")
		if !ok || !dotted {
			continue
		}
		mod = strings.ReplaceAll(mod, "-", "_")
		out[mod] = strings.TrimSpace(out[mod] + " " + strings.TrimPrefix(f, mod+"."))
	}
	return out
}

func cmdlineValue(key string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func waitFor(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setupCgroup creates the cgroup the kernel runs in. The memory ceiling
// leaves room for the agent, so an out-of-memory kill takes the kernel, not
// the VM.
func setupCgroup() error {
	if err := mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""); err != nil {
		return err
	}
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory +pids"), 0); err != nil {
		return fmt.Errorf("enable controllers: %w", err)
	}
	if err := os.MkdirAll(cgroupDir, 0o755); err != nil {
		return err
	}
	if total := memTotal(); total > 0 {
		reserve := int64(48 << 20)
		if err := os.WriteFile(cgroupDir+"/memory.max", []byte(fmt.Sprint(total-reserve)), 0); err != nil {
			return fmt.Errorf("memory.max: %w", err)
		}
	}
	return setPids(defaultPids)
}

const defaultPids = 1024

func setPids(n int64) error {
	if err := os.WriteFile(cgroupDir+"/pids.max", []byte(fmt.Sprint(n)), 0); err != nil {
		return fmt.Errorf("pids.max: %w", err)
	}
	return nil
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return 0
}

// loopbackUp brings lo up so code that talks to localhost works; there is no
// other network device.
func loopbackUp() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	_ = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mcpruntime-agent: "+format+"\n", a...)
}
