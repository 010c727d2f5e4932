// Package backend implements sdk.Backend with microVMs: each session owns a
// VM (taken from a pool of booted ones) whose guest agent runs the sdk
// kernel; snapshots save the whole VM and restore it as forks.
package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/sdk"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/cli"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/image"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// Version of the plugin.
const Version = "0.1.0"

// Backend is the microVM sandbox backend.
type Backend struct {
	log hclog.Logger

	mu       sync.Mutex
	cfg      config
	driver   vmm.Driver
	accel    string
	image    *image.Image
	stateDir string
	runDir   string
	unlock   func()
	// swept starts the sweep of dead plugins' run dirs once, at the first
	// Configure; stop ends it.
	swept    sync.Once
	stop     chan struct{}
	stopOnce sync.Once
	pool     *pool
	standby  *standbys
	images   *wsImages // nil unless workspace images are on
	sessions sdk.Sessions[*session]
}

// Option configures New.
type Option func(*Backend)

// WithLogger sets the logger (default: none).
func WithLogger(l hclog.Logger) Option { return func(b *Backend) { b.log = l } }

// New returns an unconfigured backend.
func New(opts ...Option) *Backend {
	b := &Backend{log: hclog.NewNullLogger(), stop: make(chan struct{})}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Info implements sdk.Backend.
func (b *Backend) Info(context.Context) (*sdk.Info, error) {
	return &sdk.Info{
		Name: "microvm", Version: Version, ProtocolVersions: []int{sdk.ProtocolVersion},
		Description: "Python in Linux microVMs (QEMU microvm or Cloud Hypervisor; KVM, or TCG emulation where KVM is unusable)",
		Capabilities: sdk.Capabilities{
			PersistentSessions: true, Snapshots: true, Streaming: true, HostCalls: true,
			Isolation: sdk.IsolationMicroVM, Languages: []string{"python"},
			EnforcedLimits: []string{sdk.LimitTimeout, sdk.LimitOutput, sdk.LimitMemory, sdk.LimitPids}, // no CPU: CPUMillis is not applied
			// The guest image's Python libraries: matplotlib and what it needs.
			Libraries: []string{"PIL", "matplotlib", "numpy"},
		},
	}, nil
}

// ConfigSpec implements sdk.Backend.
func (b *Backend) ConfigSpec(context.Context) (*sdk.ConfigSpec, error) { return configSpec(), nil }

// Configure implements sdk.Backend: it checks the VMM, builds or finds the
// guest image (first use takes a minute; progress is logged), picks the
// accelerator, starts the removal of what dead plugin processes left
// behind (in the background) and starts the pool.
func (b *Backend) Configure(ctx context.Context, sc *sdk.Config) error {
	c := defaultConfig()
	if err := sc.Decode(&c); err != nil {
		return err
	}
	if err := c.resolve(); err != nil {
		return fmt.Errorf("microvm config: %w", err)
	}
	// In the background, before anything slow (image, accelerator probe):
	// a killed plugin's orphans go within moments of the next start, its
	// session VMs once their core had the recovery grace to adopt them.
	b.swept.Do(func() { go b.sweepLoop(c.recoverGrace) })
	drv, err := vmm.New(c.VMM, c.VMMBinary)
	if err != nil {
		return fmt.Errorf("microvm config: %w", err)
	}
	if err := drv.Check(ctx); err != nil {
		return err
	}
	agent, err := cli.FindAgent(c.Agent)
	if err != nil {
		return err
	}
	imgDir := c.ImageDir
	if imgDir == "" {
		imgDir = cli.DefaultImageDir()
	}
	b.log.Info("preparing the guest image (first use downloads Debian packages and builds it)", "dir", imgDir)
	im, err := image.Ensure(ctx, image.Options{Dir: imgDir, Agent: agent, Logger: b.log.Named("image")})
	if err != nil {
		return fmt.Errorf("guest image: %w", err)
	}
	if err := im.Check(); err != nil {
		return err
	}
	stateDir := sc.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(os.TempDir(), "mcpruntime-microvm-state")
	}
	if err := os.MkdirAll(filepath.Join(stateDir, "snapshots"), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	b.mu.Lock()
	old, oldStandby, oldImages := b.pool, b.standby, b.images
	b.pool, b.standby, b.images = nil, nil, nil
	b.mu.Unlock()
	if old != nil {
		old.close()
	}
	if oldImages != nil {
		oldImages.close()
	}
	if oldStandby != nil {
		oldStandby.close()
	}

	b.mu.Lock()
	curDir, curUnlock := b.runDir, b.unlock
	b.mu.Unlock()
	runDir, unlock, err := claimRunDir(stateDir, b.log, curDir, curUnlock)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.unlock != nil && curDir != runDir {
		b.unlock()
	}
	b.cfg, b.driver, b.image, b.stateDir, b.runDir, b.unlock = c, drv, im, stateDir, runDir, unlock
	b.mu.Unlock()

	accel, why, err := b.pickAccel(ctx, c.Accel)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.accel = accel
	b.mu.Unlock()
	b.log.Info("microvm ready", "vmm", drv.Name(), "accel", accel, "why", why, "guest_kernel", im.Release, "image", im.Key)

	size := sc.PoolSize
	if c.PoolSize >= 0 {
		size = int(c.PoolSize)
	}
	p := newPool(b, size)
	b.mu.Lock()
	b.pool, b.standby = p, newStandbys(b, c.standby)
	if c.WorkspaceImage && b.workspaceOnDisk() {
		b.images = newWSImages(runDir, b.log.Named("wsimage"))
	}
	b.mu.Unlock()
	return nil
}

// configured returns the pool, or ErrNotConfigured.
func (b *Backend) configured() (*pool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pool == nil {
		return nil, sdk.ErrNotConfigured
	}
	return b.pool, nil
}

// standbys returns the restore standbys (nil before Configure).
func (b *Backend) standbys() *standbys {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.standby
}

// Health implements sdk.Backend.
func (b *Backend) Health(context.Context) (*sdk.Health, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := &sdk.Health{Healthy: b.pool != nil, Sessions: b.sessions.Len()}
	if b.pool == nil {
		h.Message = "not configured"
	} else {
		h.Message = fmt.Sprintf("%s with %s, %d booted VM(s) ready, %d restore standby VM(s) ready", b.driver.Name(), b.accel, b.pool.ready(), b.standby.ready())
	}
	return h, nil
}

// Close implements sdk.Closer: every VM (sessions', pooled and standby
// ones) is stopped and the run directory removed.
func (b *Backend) Close(ctx context.Context) error {
	b.stopOnce.Do(func() { close(b.stop) })
	sessions := b.sessions.TakeAll()
	b.mu.Lock()
	p, st, im := b.pool, b.standby, b.images
	b.pool, b.standby, b.images = nil, nil, nil
	runDir, unlock := b.runDir, b.unlock
	b.unlock = nil
	b.mu.Unlock()
	for _, s := range sessions {
		s.destroy(ctx)
	}
	if p != nil {
		p.close()
	}
	if st != nil {
		st.close()
	}
	if im != nil {
		im.close()
	}
	if runDir != "" {
		_ = os.RemoveAll(runDir)
	}
	if unlock != nil {
		unlock()
	}
	if runDir != "" {
		_ = os.Remove(filepath.Dir(runDir)) // only if no other plugin uses it
	}
	return nil
}

// sweepLoop sweeps the run dirs of dead plugin processes, again when the
// recovery grace of session VMs it kept ends, until Close.
func (b *Backend) sweepLoop(grace time.Duration) {
	for {
		n, next := SweepRunDirs(b.log, grace)
		if n > 0 {
			b.log.Info("swept the run dirs of dead plugin processes", "count", n)
		}
		if next <= 0 {
			return
		}
		select {
		case <-time.After(next + 100*time.Millisecond):
		case <-b.stop:
			return
		}
	}
}

// shortHash keeps socket paths short (108-byte limit).
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

var errNoVM = errors.New("no VM")
