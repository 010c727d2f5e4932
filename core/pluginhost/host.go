package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// Host owns the running plugins of one core process.
type Host struct {
	cfg    *config.Config
	logger hclog.Logger

	mu      sync.Mutex
	plugins map[string]*Instance
	closed  bool
	noPools bool
	onStart []StartFunc
}

// StartFunc is told that backend's plugin process was started: p is the
// new process, gen its generation (1 for the first start in this core
// process, more after the previous process of it exited). It runs before
// the new plugin is handed to anyone (Get waits for it, and it must not
// call the Instance itself), so it can settle what sessions become: those
// of the previous plugin process after a restart, and on the first start
// those a previous core process left (the session registry); ctx bounds it.
type StartFunc func(ctx context.Context, backend string, p *host.Plugin, gen int)

// RecoverTimeout bounds the StartFuncs run after one start.
const RecoverTimeout = 2 * time.Minute

// OnStart registers f for every plugin start from now on (the session
// manager asks the new plugin to recover its sessions there).
func (h *Host) OnStart(f StartFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onStart = append(h.onStart, f)
}

// started runs the StartFuncs for a plugin just started. The caller's
// cancellation does not cut recovery short: the sessions of every caller
// depend on it.
func (h *Host) started(ctx context.Context, name string, p *host.Plugin, gen int) {
	h.mu.Lock()
	fs := append([]StartFunc(nil), h.onStart...)
	h.mu.Unlock()
	if len(fs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecoverTimeout)
	defer cancel()
	for _, f := range fs {
		f(ctx, name, p, gen)
	}
}

// DisablePools configures every backend this host starts with a pool size
// of 0: for short-lived hosts (a one-shot exec) whose pools would only be
// started to be thrown away.
func (h *Host) DisablePools() { h.noPools = true }

// New returns a Host for cfg. Plugins start on first use.
func New(cfg *config.Config, logger hclog.Logger) *Host {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Host{cfg: cfg, logger: logger, plugins: map[string]*Instance{}}
}

// Instance is one backend's plugin: started on demand and started again
// after it dies. Generation counts the starts, so holders of sessions can
// tell that the process their session lived in is gone.
type Instance struct {
	Name string
	host *Host

	mu         sync.Mutex
	plugin     *host.Plugin
	info       *sdk.Info
	generation int
	lastExit   string
}

// Backend returns the named backend's instance (not yet started).
func (h *Host) Backend(name string) (*Instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("plugin host is shut down")
	}
	if in, ok := h.plugins[name]; ok {
		return in, nil
	}
	in := &Instance{Name: name, host: h}
	h.plugins[name] = in
	return in, nil
}

// Get returns a running, configured plugin, starting or restarting it as
// needed, with its generation.
func (in *Instance) Get(ctx context.Context) (*host.Plugin, int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.plugin != nil && !in.plugin.Exited() {
		return in.plugin, in.generation, nil
	}
	if in.plugin != nil {
		in.host.logger.Warn("plugin exited; restarting", "backend", in.Name, "pid", in.plugin.Pid())
		in.lastExit = fmt.Sprintf("plugin process %d exited", in.plugin.Pid())
		in.plugin.Kill()
		in.plugin = nil
	}
	p, info, err := in.host.start(ctx, in.Name)
	if err != nil {
		return nil, 0, err
	}
	in.plugin, in.info = p, info
	in.generation++
	in.host.started(ctx, in.Name, p, in.generation)
	return p, in.generation, nil
}

// Protocol is the plugin protocol version the running plugin negotiated
// (starting it if needed).
func (in *Instance) Protocol(ctx context.Context) (int, error) {
	p, _, err := in.Get(ctx)
	if err != nil {
		return 0, err
	}
	return p.ProtocolVersion(), nil
}

// Info is the plugin's self-description (starting it if needed).
func (in *Instance) Info(ctx context.Context) (*sdk.Info, error) {
	if _, _, err := in.Get(ctx); err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.info, nil
}

// Alive reports whether generation gen of the plugin is still running.
func (in *Instance) Alive(gen int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.plugin != nil && in.generation == gen && !in.plugin.Exited()
}

// WaitExit waits up to d for the plugin of generation gen to be seen
// exited; used to tell a crash from a transient error.
func (in *Instance) WaitExit(gen int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !in.Alive(gen) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (in *Instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.plugin != nil {
		in.plugin.Kill()
		in.plugin = nil
	}
}

// start launches, checks and configures a backend's plugin.
func (h *Host) start(ctx context.Context, name string) (*host.Plugin, *sdk.Info, error) {
	sb := h.cfg.Sandbox(name)
	path, err := Resolve(name, sb.Plugin, h.cfg.PluginDir)
	if err != nil {
		return nil, nil, err
	}
	logger := h.logger.Named(name)
	begin := time.Now()
	p, err := host.Launch(ctx, path, host.WithLaunchLogger(logger), host.WithPassEnv(sb.PassEnv...), host.WithEnv(envList(sb.Env)...))
	if err != nil {
		return nil, nil, fmt.Errorf("backend %s: %w", name, err)
	}
	if h.noPools && sb.PoolSize > 0 {
		copied := *sb
		copied.PoolSize = 0
		sb = &copied
	}
	info, err := configure(ctx, h.cfg, sb, p)
	if err != nil {
		p.Kill()
		return nil, nil, fmt.Errorf("backend %s: %w", name, err)
	}
	logger.Debug("plugin ready", "path", path, "pid", p.Pid(), "version", info.Version, "took", time.Since(begin))
	return p, info, nil
}

// configure checks a freshly launched plugin and hands it its config.
func configure(ctx context.Context, cfg *config.Config, sb *config.Sandbox, p *host.Plugin) (*sdk.Info, error) {
	info, err := p.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	if v := p.ProtocolVersion(); !slices.Contains(info.ProtocolVersions, v) {
		return nil, fmt.Errorf("plugin negotiated protocol %d but its info lists versions %v", v, info.ProtocolVersions)
	}
	spec, err := p.ConfigSpec(ctx)
	if err != nil {
		return nil, fmt.Errorf("config spec: %w", err)
	}
	js, err := cfg.PluginConfig(sb, spec)
	if err != nil {
		return nil, err
	}
	if err := p.Configure(ctx, &sdk.Config{
		JSON: js, PoolSize: sb.PoolSize, StateDir: StateDir(cfg.StateDir, sb.Name),
	}); err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	return info, nil
}

// Shutdown stops every plugin; each gets the chance to clean up (its
// Close), then its process group is killed.
func (h *Host) Shutdown() {
	h.mu.Lock()
	h.closed = true
	ins := make([]*Instance, 0, len(h.plugins))
	for _, in := range h.plugins {
		ins = append(ins, in)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() { defer wg.Done(); in.stop() }()
	}
	wg.Wait()
}

// Probe launches the plugin at path with default settings, reads its info
// and stops it; protocol is the plugin protocol version it negotiated. Used
// by `plugins list`.
func Probe(ctx context.Context, path string) (info *sdk.Info, protocol int, err error) {
	p, err := host.Launch(ctx, path)
	if err != nil {
		return nil, 0, err
	}
	defer p.Kill()
	info, err = p.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	return info, p.ProtocolVersion(), nil
}

// envList turns NAME → value into KEY=VALUE entries.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
