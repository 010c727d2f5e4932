package vmm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

var timeZero time.Time

// QEMU drives qemu-system-x86_64 with the microvm machine type: no
// firmware, no PCI, virtio-mmio devices, PVH direct kernel boot. The agent
// channel is a virtio-serial port whose host end is a unix socket the
// plugin listens on; lifecycle and snapshots go through QMP.
type QEMU struct {
	Binary string
}

// Name implements Driver.
func (q *QEMU) Name() string { return "qemu" }

// Accels implements Driver.
func (q *QEMU) Accels() []string { return []string{AccelKVM, AccelTCG} }

var qemuVersionRE = regexp.MustCompile(`version (\d+)\.(\d+)`)

// Check implements Driver: QEMU 6.0+ (microvm with virtio-mmio, PVH boot,
// migrate-incoming).
func (q *QEMU) Check(ctx context.Context) error {
	path, err := exec.LookPath(q.Binary)
	if err != nil {
		return fmt.Errorf("%w: %s not found on PATH; install it with `apt-get install --no-install-recommends qemu-system-x86` (Debian/Ubuntu) or your distribution's qemu-system-x86_64 package", ErrNoVMM, q.Binary)
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: %s --version: %v", ErrNoVMM, path, err)
	}
	m := qemuVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("%w: cannot read the version of %s: %q", ErrNoVMM, path, out)
	}
	major, _ := strconv.Atoi(m[1])
	if major < 6 {
		return fmt.Errorf("%w: %s is QEMU %s.%s; 6.0 or newer is needed (microvm machine with PVH boot)", ErrNoVMM, path, m[1], m[2])
	}
	return nil
}

// qemuMachine is a running QEMU.
type qemuMachine struct {
	p     *proc
	qmp   *qmp
	agent *net.UnixConn
	once  sync.Once
	disk  string // the workspace disk, if it has one
	slot  string // the workspace slot disk, if it has one
	// swapped: the slot's content is an image given at attach (one swap
	// per VM: a pooled VM serves one session).
	swapped bool
}

func (q *QEMU) args(spec Spec, agentSock, qmpSock string) []string {
	accel := []string{"-accel", "tcg", "-cpu", "max"}
	if spec.Accel == AccelKVM {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	a := []string{
		"-name", Marker(spec.ID),
		"-M", "microvm,x-option-roms=off,isa-serial=on",
		"-m", fmt.Sprintf("%dM", spec.MemoryMiB), "-smp", strconv.Itoa(max(spec.VCPUs, 1)),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", spec.Image.Kernel, "-initrd", spec.Image.Initramfs,
		"-append", kernelCmdline(spec, "ttyS0", "serial"),
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,server=on,wait=off,path=" + agentSock,
		"-device", "virtserialport,chardev=agent,name=" + proto.PortName,
		"-drive", "id=root,file=" + spec.Image.Rootfs + ",format=raw,if=none,readonly=on",
		"-device", "virtio-blk-device,drive=root",
		"-chardev", "socket,id=qmp,server=on,wait=off,path=" + qmpSock,
		"-mon", "chardev=qmp,mode=control",
	}
	if spec.WorkspaceMiB > 0 {
		// cache=unsafe: the disk is scratch (the host workspace is the
		// copy that counts), so guest flushes need not reach the host's
		// disk. A host write error is reported to the guest (EIO), never
		// a paused VM.
		// Named block nodes (not -drive, whose nodes get generated
		// names): a session's attach can point the slot's format node at a
		// prebuilt image (wsswap.go).
		a = append(a, wsDiskArgs(wsFormatNode, wsBootNode, filepath.Join(spec.Dir, WorkspaceDiskFile))...)
		if spec.WorkspaceSlot {
			// After the first disk: a restored VM must get its devices in
			// the order the saved one had them.
			a = append(a, wsDiskArgs(wsSlotNode, wsSlotBootNode, filepath.Join(spec.Dir, WorkspaceSlotFile))...)
		}
	}
	return append(accel, a...)
}

// copyDisks copies the workspace disks' data into the snapshot dir (the
// VM is stopped) and returns how many bytes that was.
func (m *qemuMachine) copyDisks(dir string) (int64, error) {
	var n int64
	for name, path := range map[string]string{WorkspaceDiskFile: m.disk, WorkspaceSlotFile: m.slot} {
		if path == "" {
			continue
		}
		c, err := copySparse(filepath.Join(dir, name), path)
		if err != nil {
			return 0, fmt.Errorf("snapshot the workspace disk %s: %w", name, err)
		}
		n += c
	}
	return n, nil
}

// wsDiskArgs are the arguments of one workspace disk: a file node, the
// raw format node the device reads, and the device.
func wsDiskArgs(format, file, path string) []string {
	return []string{
		"-blockdev", wsFileNode(file, path),
		"-blockdev", "driver=raw,node-name=" + format + ",file=" + file + ",discard=unmap,cache.direct=off,cache.no-flush=on",
		"-device", "virtio-blk-device,drive=" + format + ",werror=report,rerror=report",
	}
}

// start starts QEMU, which listens on the VM's two sockets (the agent's
// virtio-serial port and QMP), connects to both and sets up QMP. QEMU is
// the listening side so that a plugin started after this one crashed can
// connect again (Attach): a chardev server takes a new client once the
// old one is gone.
func (q *QEMU) start(ctx context.Context, spec Spec, extra ...string) (*qemuMachine, error) {
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, err
	}
	agentSock, qmpSock := filepath.Join(spec.Dir, "a.sock"), filepath.Join(spec.Dir, "q.sock")
	disk, slot := "", ""
	if spec.WorkspaceMiB > 0 {
		disk = filepath.Join(spec.Dir, WorkspaceDiskFile)
		if err := makeExt4IfAbsent(ctx, disk, spec.WorkspaceMiB, WorkspaceLabel); err != nil {
			return nil, err
		}
		if spec.WorkspaceSlot {
			slot = filepath.Join(spec.Dir, WorkspaceSlotFile)
			if err := makeExt4IfAbsent(ctx, slot, spec.WorkspaceMiB, WorkspaceSlotLabel); err != nil {
				return nil, err
			}
		}
	}
	cmd := exec.Command(q.Binary, append(q.args(spec, agentSock, qmpSock), extra...)...)
	p, err := startProc(cmd, spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoVMM, err)
	}
	m, err := connectQEMU(ctx, p, spec.Dir)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%w (qemu: %s)", err, p.describe())
	}
	m.disk, m.slot = disk, slot
	// Snapshots are local files: no bandwidth cap.
	if _, err := m.qmp.exec(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil); err != nil {
		m.Kill()
		return nil, fmt.Errorf("%w (qemu: %s)", err, p.describe())
	}
	return m, nil
}

// connectQEMU connects to the agent and QMP sockets of the QEMU p runs in
// dir, waiting for them to appear.
func connectQEMU(ctx context.Context, p *proc, dir string) (*qemuMachine, error) {
	dial := func(path string) (*net.UnixConn, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err == nil {
				return c, nil
			}
			if p.exited() {
				return nil, fmt.Errorf("qemu exited at start-up")
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("qemu's socket %s did not accept within 30s: %w", filepath.Base(path), err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	m := &qemuMachine{p: p}
	ac, err := dial(filepath.Join(dir, "a.sock"))
	if err != nil {
		return nil, err
	}
	m.agent = ac
	qc, err := dial(filepath.Join(dir, "q.sock"))
	if err != nil {
		ac.Close()
		return nil, err
	}
	if m.qmp, err = newQMP(ctx, qc); err != nil {
		ac.Close()
		qc.Close()
		return nil, err
	}
	return m, nil
}

// Attach implements Driver: it adopts the QEMU of spec's VM that an
// earlier plugin process started, connecting to its sockets again.
func (q *QEMU) Attach(ctx context.Context, spec Spec) (Machine, error) {
	p, err := adoptProc(spec.Dir, Marker(spec.ID))
	if err != nil {
		return nil, err
	}
	m, err := connectQEMU(ctx, p, spec.Dir)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("reconnect to VM %s: %w", spec.ID, err)
	}
	if disk := filepath.Join(spec.Dir, WorkspaceDiskFile); fileExists(disk) {
		m.disk = disk
	}
	if slot := filepath.Join(spec.Dir, WorkspaceSlotFile); fileExists(slot) {
		m.slot = slot
	}
	// Only a pooled VM takes an image, and only sessions' VMs are
	// adopted: whether its slot was swapped already is not known here.
	m.swapped = true
	return m, nil
}

// Launch implements Driver.
func (q *QEMU) Launch(ctx context.Context, spec Spec) (Machine, error) {
	m, err := q.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Restore implements Driver: QEMU starts waiting for an incoming
// migration, reads the saved state from the snapshot file and resumes.
func (q *QEMU) Restore(ctx context.Context, spec Spec, snapshotDir string) (Machine, error) {
	f, err := os.Open(filepath.Join(snapshotDir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	// The restored VM has the devices the saved one had: a workspace
	// disk, with the snapshot's copy of it, if the snapshot has one.
	spec.WorkspaceMiB, spec.WorkspaceSlot = 0, false
	for _, name := range []string{WorkspaceDiskFile, WorkspaceSlotFile} {
		snapDisk := filepath.Join(snapshotDir, name)
		if !fileExists(snapDisk) {
			continue
		}
		if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
			return nil, err
		}
		if _, err := copySparse(filepath.Join(spec.Dir, name), snapDisk); err != nil {
			return nil, fmt.Errorf("restore snapshot: %w", err)
		}
		spec.WorkspaceMiB = 1 // any size: the copy exists
		spec.WorkspaceSlot = spec.WorkspaceSlot || name == WorkspaceSlotFile
	}
	m, err := q.start(ctx, spec, "-incoming", "defer")
	if err != nil {
		return nil, err
	}
	// What the restored guest has on its slot is in its memory, not
	// known here: it is never swapped.
	m.swapped = true
	fail := func(err error) (Machine, error) {
		m.Kill()
		return nil, fmt.Errorf("restore snapshot: %w (qemu: %s)", err, m.p.describe())
	}
	if _, err := m.qmp.exec(ctx, "getfd", map[string]any{"fdname": "snapshot"}, f); err != nil {
		return fail(err)
	}
	if _, err := m.qmp.exec(ctx, "migrate-incoming", map[string]any{"uri": "fd:snapshot"}, nil); err != nil {
		return fail(err)
	}
	// A bad stream makes QEMU exit; a good one ends with the VM running
	// (no -S: it resumes by itself once the state is loaded).
	for {
		st, err := m.qmp.runStatus(ctx)
		if err != nil {
			return fail(fmt.Errorf("the snapshot could not be loaded: %w", err))
		}
		switch st {
		case "running":
			return m, nil
		case "inmigrate", "prelaunch", "restore-vm":
		case "paused", "postmigrate":
			if _, err := m.qmp.exec(ctx, "cont", nil, nil); err != nil {
				return fail(err)
			}
		default:
			return fail(fmt.Errorf("the snapshot could not be loaded: vm is %s", st))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-m.p.done:
			return fail(fmt.Errorf("the snapshot could not be loaded"))
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// stateFile is the saved VM state inside a snapshot directory.
const stateFile = "vm.state"

func (m *qemuMachine) Agent() io.ReadWriteCloser { return m.agent }
func (m *qemuMachine) Done() <-chan struct{}     { return m.p.done }
func (m *qemuMachine) Describe() string          { return m.p.describe() }
func (m *qemuMachine) Pid() int                  { return m.p.pid }

func (m *qemuMachine) Kill() {
	m.once.Do(func() {
		m.p.kill()
		if m.qmp != nil {
			m.qmp.close()
		}
		if m.agent != nil {
			m.agent.Close()
		}
	})
}

// Snapshot implements Machine: stop, migrate into a file passed over QMP,
// continue.
func (m *qemuMachine) Snapshot(ctx context.Context, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	path := filepath.Join(dir, stateFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := m.qmp.exec(ctx, "stop", nil, nil); err != nil {
		return 0, err
	}
	resumed := false
	resume := func() error {
		if resumed {
			return nil
		}
		resumed = true
		_, err := m.qmp.exec(context.Background(), "cont", nil, nil)
		return err
	}
	defer resume()
	if _, err := m.qmp.exec(ctx, "getfd", map[string]any{"fdname": "snapshot"}, f); err != nil {
		return 0, err
	}
	if _, err := m.qmp.exec(ctx, "migrate", map[string]any{"uri": "fd:snapshot"}, nil); err != nil {
		return 0, err
	}
	for {
		st, desc, err := m.qmp.migrationStatus(ctx)
		if err != nil {
			return 0, err
		}
		switch st {
		case "completed":
			// The disk is copied while the VM is still stopped, so it
			// matches the saved memory.
			diskBytes, err := m.copyDisks(dir)
			if err != nil {
				return 0, err
			}
			if err := resume(); err != nil {
				return 0, fmt.Errorf("resume after snapshot: %w", err)
			}
			fi, err := f.Stat()
			if err != nil {
				return 0, err
			}
			return fi.Size() + diskBytes, nil
		case "failed", "cancelled":
			return 0, fmt.Errorf("%w: %s", errMigrationFailed, strings.TrimSpace(desc))
		}
		select {
		case <-ctx.Done():
			_, _ = m.qmp.exec(context.Background(), "migrate_cancel", nil, nil)
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
