package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/internal/wire"
)

// Plugin is a running plugin process and the Backend that talks to it.
type Plugin struct {
	// Backend is the gRPC client; it implements every Backend method.
	*Client
	// Path is the executable that was started.
	Path string

	raw *plugin.Client
	pid int
	// stopGroup SIGKILLs the plugin's process group while the plugin runs
	// (nil in process).
	stopGroup context.CancelFunc
	log       hclog.Logger
}

// DefaultStartTimeout bounds a plugin's handshake when Launch is given no
// WithStartTimeout. A plugin prints its handshake line as soon as it
// starts (before any backend work), so this only fails broken plugins.
const DefaultStartTimeout = 20 * time.Second

// killGrace is how long Kill waits for go-plugin's own shutdown (a
// graceful request, 2s, then SIGKILL of the plugin) before it kills the
// plugin's whole process group, and again after that.
const killGrace = 3 * time.Second

// LaunchOption configures Launch.
type LaunchOption func(*launchConfig)

type launchConfig struct {
	logger       hclog.Logger
	startTimeout time.Duration
	env          []string
	pass         []string
}

// WithLaunchLogger sets the logger that receives the plugin's own logs.
func WithLaunchLogger(l hclog.Logger) LaunchOption {
	return func(c *launchConfig) { c.logger = l }
}

// WithStartTimeout bounds the handshake (default DefaultStartTimeout): a
// plugin that has not completed it by then fails to launch, and its
// process group is killed.
func WithStartTimeout(d time.Duration) LaunchOption {
	return func(c *launchConfig) { c.startTimeout = d }
}

// WithEnv sets environment variables (KEY=VALUE) for the plugin process.
func WithEnv(kv ...string) LaunchOption {
	return func(c *launchConfig) { c.env = append(c.env, kv...) }
}

// WithPassEnv passes the host's values of the named variables to the plugin
// process. Without it a plugin receives only AllowedEnv's base set.
func WithPassEnv(names ...string) LaunchOption {
	return func(c *launchConfig) { c.pass = append(c.pass, names...) }
}

// env is the plugin's whole environment: the allow-listed host variables,
// the passed ones, then the explicit ones. go-plugin adds its handshake
// variables; it must not add the host's environment (SkipHostEnv).
func (c *launchConfig) environ() []string {
	set := map[string]string{}
	for _, kv := range c.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = v
		}
	}
	return AllowedEnv(c.pass, set)
}

// Launch starts the plugin executable at path, performs the handshake and
// returns a connected Plugin. The plugin runs in its own process group and
// dies with the calling process (Linux parent-death signal), so a killed
// core leaves no plugin behind.
//
// The handshake must complete within the start timeout (and before ctx
// ends), whatever the plugin does: one that prints nothing, or exits while
// a process it started keeps its stdout open, fails then with its process
// group killed instead of holding Launch until that process ends.
func Launch(ctx context.Context, path string, opts ...LaunchOption) (*Plugin, error) {
	cfg := &launchConfig{startTimeout: DefaultStartTimeout}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.logger == nil {
		cfg.logger = hclog.NewNullLogger()
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("plugin %s: executable not found", path)
	case err != nil:
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("plugin %s: is a directory, not an executable", path)
	case st.Mode()&0o111 == 0:
		return nil, fmt.Errorf("plugin %s: not executable (chmod +x %s)", path, path)
	}
	stderr := &sdk.TailWriter{Max: 2048}
	// Cancelling groupCtx SIGKILLs the plugin's process group (it leads
	// its own: Setpgid) as long as the plugin runs: go-plugin kills only
	// the plugin process, and waits for its stdout to close, which a child
	// holding it delays for as long as that child lives.
	groupCtx, stopGroup := context.WithCancel(context.Background())
	cmd := exec.CommandContext(groupCtx, path)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = cfg.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	raw := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.VersionedPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		Logger:           cfg.logger,
		// Launch's own deadline below answers first; go-plugin's is a
		// backstop.
		StartTimeout: cfg.startTimeout + 5*time.Second,
		Stderr:       stderr,
	})
	fail := func(err error) (*Plugin, error) {
		stopPlugin(raw, stopGroup, 0, false, cfg.logger)
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.startTimeout)
	defer cancel()
	done := make(chan struct{})
	var (
		rpc   plugin.ClientProtocol
		hsErr error
	)
	go func() {
		defer close(done)
		rpc, hsErr = raw.Client()
	}()
	select {
	case <-done:
	case <-hctx.Done():
		stopPlugin(raw, stopGroup, 0, false, cfg.logger)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %s: handshake interrupted: %w", path, ctx.Err())
		}
		msg := fmt.Sprintf("plugin %s: no handshake within %s (a plugin prints its handshake line on stdout when it starts; "+
			"this one printed none, or exited while a process it started kept its stdout open); its process group was killed", path, cfg.startTimeout)
		if tail := stderr.String(); tail != "" {
			msg += "; its stderr ends with: " + tail
		}
		return nil, errors.New(msg)
	}
	if hsErr != nil {
		// A plugin that crashed at start-up is the common case: give the
		// exit a moment to be noticed, then show what it printed.
		died := false
		for range 20 {
			if died = raw.Exited(); died {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if strings.Contains(strings.ToLower(hsErr.Error()), "incompatible api version") {
			return fail(incompatible(path, hsErr))
		}
		if died {
			if tail := stderr.String(); tail != "" {
				return fail(fmt.Errorf("plugin %s exited before the handshake; its stderr ends with: %s", path, tail))
			}
		}
		return fail(fmt.Errorf("plugin %s: handshake failed: %w", path, hsErr))
	}
	v, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w", path, err))
	}
	c, ok := v.(*wire.Client)
	if !ok {
		return fail(fmt.Errorf("plugin %s: unexpected client type %T", path, v))
	}
	p := &Plugin{Client: c, Path: path, raw: raw, stopGroup: stopGroup, log: cfg.logger}
	if cmd.Process != nil {
		p.pid = cmd.Process.Pid
	}
	return p, nil
}

// stopPlugin ends a plugin without waiting on it for long. A graceful stop
// gives go-plugin's Kill (a shutdown request to a connected plugin, then
// SIGKILL of its process) killGrace first; then, or at once when not
// graceful, the process group is killed, which closes the stdout a child
// may hold and lets that Kill return. A process that left the group
// (setsid) and holds stdout still cannot hold the caller: it is given
// killGrace once more, then left to go-plugin's goroutines.
func stopPlugin(raw *plugin.Client, stopGroup context.CancelFunc, pid int, graceful bool, log hclog.Logger) {
	if !graceful && stopGroup != nil {
		stopGroup()
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		raw.Kill()
	}()
	select {
	case <-killed:
	case <-time.After(killGrace):
	}
	if stopGroup != nil {
		stopGroup()
	}
	if pid > 0 {
		// The group outlives its leader: kill what the plugin started.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	select {
	case <-killed:
	case <-time.After(killGrace):
		log.Warn("plugin still holds its output after its process group was killed; leaving it", "pid", pid)
	}
}

// ErrIncompatibleProtocol is wrapped by Launch's error when a plugin speaks
// no plugin protocol version this core does.
var ErrIncompatibleProtocol = errors.New("incompatible plugin protocol version")

var pluginVersionRE = regexp.MustCompile(`Plugin version: (-?[0-9]+)`)

// incompatible explains go-plugin's version mismatch: which version the
// plugin speaks (when its message says), which ones the core speaks, what
// to do.
func incompatible(path string, err error) error {
	speaks := "another protocol version (" + err.Error() + ")"
	if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
		speaks = "protocol version " + m[1]
	}
	versions := sdk.ProtocolVersions()
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = strconv.Itoa(v)
	}
	return fmt.Errorf("plugin %s speaks %s, this core speaks %s (%w); rebuild the plugin against an sdk with protocol %d",
		path, speaks, strings.Join(names, " and "), ErrIncompatibleProtocol, sdk.ProtocolVersion)
}

// Pid is the plugin's process id.
func (p *Plugin) Pid() int { return p.pid }

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.raw.Exited() }

// ProtocolVersion is the protocol version negotiated in the handshake.
func (p *Plugin) ProtocolVersion() int { return p.raw.NegotiatedVersion() }

// Kill stops the plugin: a graceful shutdown request first (the backend's
// Close runs), then SIGKILL to its whole process group so nothing it started
// outlives it.
func (p *Plugin) Kill() {
	log := p.log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	stopPlugin(p.raw, p.stopGroup, p.pid, true, log)
}
