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
}

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

// WithStartTimeout bounds the handshake (default 30s).
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
func Launch(ctx context.Context, path string, opts ...LaunchOption) (*Plugin, error) {
	cfg := &launchConfig{startTimeout: 30 * time.Second}
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
	cmd := exec.Command(path)
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
		StartTimeout:     cfg.startTimeout,
		Stderr:           stderr,
	})
	done := make(chan struct{})
	var rpc plugin.ClientProtocol
	go func() {
		defer close(done)
		rpc, err = raw.Client()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		raw.Kill()
		<-done
		return nil, fmt.Errorf("plugin %s: %w", path, ctx.Err())
	}
	if err != nil {
		// A plugin that crashed at start-up is the common case: give the
		// exit a moment to be noticed, then show what it printed.
		died := false
		for range 20 {
			if died = raw.Exited(); died {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		raw.Kill()
		if strings.Contains(strings.ToLower(err.Error()), "incompatible api version") {
			return nil, incompatible(path, err)
		}
		if died {
			if tail := stderr.String(); tail != "" {
				return nil, fmt.Errorf("plugin %s exited before the handshake; its stderr ends with: %s", path, tail)
			}
		}
		return nil, fmt.Errorf("plugin %s: handshake failed: %w", path, err)
	}
	v, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		raw.Kill()
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	c, ok := v.(*wire.Client)
	if !ok {
		raw.Kill()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", path, v)
	}
	p := &Plugin{Client: c, Path: path, raw: raw}
	if cmd.Process != nil {
		p.pid = cmd.Process.Pid
	}
	return p, nil
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
	p.raw.Kill()
	if p.pid > 0 {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}
