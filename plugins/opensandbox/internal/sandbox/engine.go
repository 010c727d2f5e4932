package sandbox

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk/owner"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// runDir holds the plugin's runtime files (slots, FIFOs, runc state).
const runDir = "/run/mcpruntime/opensandbox"

// engine is a configured connection to containerd with everything sessions
// need: the image's read-only root snapshot, the kernel file, the slot
// mount and the warm pool.
type engine struct {
	s      Settings
	log    hclog.Logger
	client *client.Client
	// ctx carries the namespace and outlives requests (task waits).
	ctx    context.Context
	cancel context.CancelFunc

	img       *image.Ready
	rootKey   string
	kernelDir string
	snapDir   string
	slots     string
	fifos     string
	runcRoot  string // state roots of runc-compatible runtimes, one per runtime
	rt        ociRuntime
	seccomp   *seccompCache // crun only
	// owner is the plugin process's owner id (see sweep.go), named by
	// every container, slot and FIFO directory it creates.
	owner string
	// core names the process that started this plugin (coreID): a dead
	// owner with the same core was this core's previous plugin process.
	core     string
	defaults limits
	pool     *pool
	// sweepDone is closed when the background sweep has finished.
	sweepDone chan struct{}
	// anchorDone is closed once startAnchor returned (nil: no anchor
	// wanted); anchor is then set if it succeeded.
	anchorDone chan struct{}
	anchor     client.Container
}

// seq numbers the containers of this process (all its engines: they share
// the owner id that container names carry).
var seq atomic.Int64

// newEngine connects, starts the sweep of what dead plugins left behind,
// provides the image and starts the warm pool. owner is the process's
// owner id, claimed in ownersDir.
func newEngine(ctx context.Context, s Settings, stateDir string, poolSize int, ownerID string, log hclog.Logger) (_ *engine, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the opensandbox backend must run as root (it drives containerd and mounts workspaces into running containers)")
	}
	c, err := connect(ctx, s, log)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), s.Namespace))
	e := &engine{s: s, log: log, client: c, ctx: bctx, cancel: cancel, owner: ownerID, core: coreID(),
		defaults: limits{memory: s.memoryBytes, pids: int64(s.Pids), cpu: s.CPUs}}
	defer func() {
		if err != nil {
			e.close(context.WithoutCancel(ctx))
		}
	}()
	rt, why, err := resolveRuntime(s.Runtime)
	if err != nil {
		return nil, err
	}
	unlock, err := setupLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	e.rt = rt.withReadOnlyBinary(log)
	log.Info("OCI runtime", "runtime", rt.name, "why", why, "binary", e.rt.binary)
	if stateDir == "" {
		stateDir = "/var/lib/mcpruntime/opensandbox"
	}
	base := filepath.Join(runDir, s.Namespace)
	e.slots, e.runcRoot = filepath.Join(base, "slots"), filepath.Join(base, "runc")
	// FIFO directories of older plugins (one per owner) are still swept;
	// the channel FIFOs are in each container's slot now.
	e.fifos = filepath.Join(base, "fifo", e.owner)
	e.snapDir = filepath.Join(stateDir, "snapshots")
	if e.rt.name == "crun" {
		e.seccomp = newSeccompCache(filepath.Join(stateDir, "seccomp"), e.rt.binary)
	}
	for _, d := range []string{e.runcRoot, e.snapDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	if err := ensureShared(e.slots); err != nil {
		return nil, fmt.Errorf("slot mount: %w", err)
	}
	unlock()
	// The orphans of a killed plugin go within moments of the next start,
	// whatever this one does next (the image check, a first session).
	e.sweepDone = make(chan struct{})
	go func() {
		defer close(e.sweepDone)
		e.sweeper()
	}()
	if e.kernelDir, err = installKernel(filepath.Join(stateDir, "kernel")); err != nil {
		return nil, err
	}
	nctx := namespaces.WithNamespace(ctx, s.Namespace)
	e.img, err = image.Ensure(nctx, c, image.Options{
		Name: s.Image, Packages: s.Packages, WorkDir: s.BuildDir, Snapshotter: s.Snapshotter,
		NoBuild: !s.BuildImage, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := e.rootView(nctx); err != nil {
		return nil, err
	}
	e.pool = newPool(e, poolSize)
	if poolSize <= 0 {
		// In the background: a one-shot command's first session need not
		// wait for it.
		e.anchorDone = make(chan struct{})
		go func() {
			defer close(e.anchorDone)
			a, err := e.startAnchor(e.ctx)
			if err != nil {
				e.log.Warn("no anchor container: cold starts may have to start the runtime shim", "error", err)
				return
			}
			e.anchor = a
		}()
	}
	return e, nil
}

func installKernel(dir string) (string, error) {
	if _, err := kernel.Install(dir); err != nil {
		return "", err
	}
	if err := installInit(filepath.Join(dir, initName)); err != nil {
		return "", err
	}
	// The kernel runs as an unprivileged user: make the directory readable
	// whatever the umask or the state directory's mode.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("install kernel: %w", err)
	}
	return dir, nil
}

// installInit copies the container init next to the kernel: the small
// mcpruntime-opensandbox-init built beside the plugin, else the plugin
// binary itself (it has an init mode too, but starts ~10 ms slower). It
// must not need a dynamic loader, since the image's libraries are not the
// host's.
func installInit(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if small := filepath.Join(filepath.Dir(self), initProgram); fileExists(small) {
		self = small
	}
	if initBinary != "" {
		self = initBinary
	}
	f, err := elf.Open(self)
	if err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			f.Close()
			return fmt.Errorf("install init: %s is dynamically linked; build the plugin with CGO_ENABLED=0 (make build does)", self)
		}
	}
	f.Close()
	src, err := os.Stat(self)
	if err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if cur, err := os.Stat(dst); err == nil && cur.Size() == src.Size() && cur.ModTime().Equal(src.ModTime()) {
		return nil
	}
	tmp := dst + ".tmp-" + strconv.Itoa(os.Getpid())
	if _, err := copyFile(self, tmp); err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if err := os.Chtimes(tmp, src.ModTime(), src.ModTime()); err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("install init: %w", err)
	}
	return nil
}

// initProgram is the container init's program, built beside the plugin.
const initProgram = "mcpruntime-opensandbox-init"

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// initBinary overrides the binary installed as init (in-process tests,
// whose executable is the test binary).
var initBinary = os.Getenv("OPENSANDBOX_INIT_BINARY")

// rootView prepares the read-only snapshot every container shares as its
// root file system: a view of the image's only layer costs no copy, and
// the spec makes the root read-only anyway.
func (e *engine) rootView(ctx context.Context) error {
	short := strings.TrimPrefix(e.img.ChainID, "sha256:")[:16]
	e.rootKey = "osb-rootfs-" + short
	sn := e.client.SnapshotService(e.s.Snapshotter)
	if _, err := sn.Stat(ctx, e.rootKey); errdefs.IsNotFound(err) {
		labels := map[string]string{"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339)}
		if _, err := sn.View(ctx, e.rootKey, e.img.ChainID, snapshots.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("root snapshot of image %s: %w", e.img.Image.Name(), err)
		}
	} else if err != nil {
		return fmt.Errorf("root snapshot: %w", err)
	}
	mounts, err := sn.Mounts(ctx, e.rootKey)
	if err != nil {
		return fmt.Errorf("root snapshot of image %s: %w", e.img.Image.Name(), err)
	}
	// A read-only root cannot get missing mount points created at start,
	// and without the interpreter every session would fail later and less
	// clearly: check the image once here.
	return mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
		var missing []string
		for _, p := range append([]string{"usr/bin/python3"}, image.MountPoints()...) {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				missing = append(missing, "/"+p)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("image %s is not a usable sandbox image (missing %s); remove it and rebuild with `make -C plugins/opensandbox image`", e.img.Image.Name(), strings.Join(missing, ", "))
		}
		e.compileKernel(ctx, root)
		return nil
	})
}

// closeIdle removes the containers that serve no session: the pool's and
// the anchor.
func (e *engine) closeIdle(ctx context.Context) {
	if e.pool != nil {
		e.pool.close(ctx)
	}
	if e.anchorDone != nil {
		<-e.anchorDone
		if e.anchor != nil {
			removeContainer(context.WithoutCancel(e.ctx), e.anchor)
			e.anchor = nil
		}
	}
}

// close removes every idle container and disconnects. Sessions are
// destroyed by the backend before.
func (e *engine) close(ctx context.Context) {
	e.closeIdle(ctx)
	e.cancel()
	if e.sweepDone != nil {
		<-e.sweepDone
	}
	if e.client != nil {
		e.client.Close()
	}
}

// setupLock serialises the host-wide set-up of concurrently starting
// plugins (the shared slot mount, the read-only runtime binary): two
// binds of one directory would stack, hiding the first one's submounts.
// The returned function may be called more than once.
func setupLock() (func(), error) {
	if err := os.MkdirAll(runDir, 0o711); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(runDir, "setup.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("set-up lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("set-up lock: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// The pid scheme of owners, before owner ids: still read to sweep what an
// older plugin left.

// legacyOwnerID names a process so that a reused pid is not mistaken for
// it: its pid and its start time (field 22 of /proc/PID/stat).
func legacyOwnerID(pid int) (string, error) {
	start, err := owner.StartTime(pid)
	if err != nil {
		return "", fmt.Errorf("owner id: %w", err)
	}
	return strconv.Itoa(pid) + ":" + start, nil
}

// ownerAlive reports whether the process a pid-scheme owner label
// ("pid:start-time") names still runs.
func ownerAlive(owner string) bool {
	pidStr, _, ok := strings.Cut(owner, ":")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	cur, err := legacyOwnerID(pid)
	return err == nil && cur == owner
}
