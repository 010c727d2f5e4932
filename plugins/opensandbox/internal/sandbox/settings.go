package sandbox

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/daemon"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Settings is the decoded `config { ... }` block of the backend.
type Settings struct {
	Address     string   `json:"address"`
	Namespace   string   `json:"namespace"`
	Image       string   `json:"image"`
	Packages    []string `json:"packages"`
	Runtime     string   `json:"runtime"`
	Snapshotter string   `json:"snapshotter"`
	StartDaemon bool     `json:"start_daemon"`
	BuildImage  bool     `json:"build_image"`
	BuildDir    string   `json:"build_dir"`
	Memory      string   `json:"memory"`
	Pids        float64  `json:"pids"`
	CPUs        float64  `json:"cpus"`
	TmpSize     string   `json:"tmp_size"`
	// RecoveryGrace is how long the containers of a session whose plugin
	// process died are kept for a RecoverSessions call (see sweep.go).
	RecoveryGrace string `json:"recovery_grace"`

	memoryBytes   int64
	tmpBytes      int64
	recoveryGrace time.Duration
}

// DefaultSettings are what an empty config block means.
func DefaultSettings() Settings {
	return Settings{
		Address:     daemon.DefaultAddress,
		Namespace:   "mcpruntime-opensandbox",
		Image:       "mcpruntime/python:3.11",
		Packages:    append([]string(nil), image.DefaultExtraPackages...),
		Runtime:     "auto",
		Snapshotter: "overlayfs",
		StartDaemon: true,
		BuildImage:  true,
		BuildDir:    "/var/lib/mcpruntime/opensandbox/image",
		Memory:      "1GiB",
		Pids:        256,
		CPUs:        1,
		TmpSize:     "256MiB",
		// The core recovers sessions right after it restarted a plugin:
		// seconds. A minute leaves room for a slow start.
		RecoveryGrace: "60s",
	}
}

// configSpec is the schema published to the core.
func configSpec() *sdk.ConfigSpec {
	d := DefaultSettings()
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "address", Type: sdk.TypeString, Default: d.Address, Description: "containerd gRPC socket"},
		{Name: "namespace", Type: sdk.TypeString, Default: d.Namespace, Description: "containerd namespace owned by this backend (swept of leftovers on start)"},
		{Name: "image", Type: sdk.TypeString, Default: d.Image, Description: "name of the Python image in containerd (built from Debian packages when missing)"},
		{Name: "packages", Type: sdk.TypeStringList, Default: d.Packages, Description: "extra Debian packages installed into the image"},
		{Name: "runtime", Type: sdk.TypeString, Default: d.Runtime, Description: `OCI runtime: "auto" (crun where installed and usable, else runc), "crun", "runc", or a containerd shim name`},
		{Name: "snapshotter", Type: sdk.TypeString, Default: d.Snapshotter, Description: "containerd snapshotter the image is unpacked with"},
		{Name: "start_daemon", Type: sdk.TypeBool, Default: d.StartDaemon, Description: "start the private containerd when the default address does not answer"},
		{Name: "build_image", Type: sdk.TypeBool, Default: d.BuildImage, Description: "build and import the image on first use when it is missing"},
		{Name: "build_dir", Type: sdk.TypeString, Default: d.BuildDir, Description: "package cache and scratch space for image builds"},
		{Name: "memory", Type: sdk.TypeSize, Default: d.Memory, Description: "memory limit of a session when its limits set none"},
		{Name: "pids", Type: sdk.TypeNumber, Default: d.Pids, Description: "process/thread limit of a session when its limits set none"},
		{Name: "cpus", Type: sdk.TypeNumber, Default: d.CPUs, Description: "CPU cores a session may use when its limits set none"},
		{Name: "tmp_size", Type: sdk.TypeSize, Default: d.TmpSize, Description: "size of the tmpfs at /tmp"},
		{Name: "recovery_grace", Type: sdk.TypeDuration, Default: d.RecoveryGrace, Description: "how long a session's container outlives its crashed plugin process, waiting for the restarted plugin to recover it (0s: removed by the next sweep)"},
	}}
}

// decodeSettings applies cfg over the defaults and validates it.
func decodeSettings(cfg *sdk.Config) (Settings, error) {
	s := DefaultSettings()
	if err := cfg.Decode(&s); err != nil {
		return s, err
	}
	var err error
	if s.memoryBytes, err = ParseSize(s.Memory); err != nil {
		return s, fmt.Errorf("config memory: %w", err)
	}
	if s.tmpBytes, err = ParseSize(s.TmpSize); err != nil {
		return s, fmt.Errorf("config tmp_size: %w", err)
	}
	if s.recoveryGrace, err = time.ParseDuration(s.RecoveryGrace); err != nil || s.recoveryGrace < 0 {
		return s, fmt.Errorf("config recovery_grace %q: want a duration such as 60s", s.RecoveryGrace)
	}
	switch {
	case s.Address == "":
		return s, fmt.Errorf("config address: empty")
	case s.Namespace == "" || !nameRe.MatchString(s.Namespace):
		return s, fmt.Errorf("config namespace %q: want letters, digits, '.', '_' or '-'", s.Namespace)
	case s.Image == "":
		return s, fmt.Errorf("config image: empty")
	case s.Pids < 0 || s.CPUs < 0:
		return s, fmt.Errorf("config pids/cpus: must not be negative")
	}
	return s, nil
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseSize reads sizes such as "512MiB", "1GiB", "64M" or "1048576".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * float64(mult)), nil
}

// connect opens containerd at s.Address, starting the private daemon when
// allowed and the address is the private default.
func connect(ctx context.Context, s Settings, log hclog.Logger) (*client.Client, error) {
	if err := daemon.Answers(ctx, s.Address); err != nil {
		if !s.StartDaemon || s.Address != daemon.DefaultAddress {
			return nil, fmt.Errorf("%w (start the private containerd with `make -C plugins/opensandbox daemon`, or set address to a running containerd)", err)
		}
		if err := daemon.Ensure(ctx, daemon.DefaultPaths(), log); err != nil {
			return nil, err
		}
	}
	c, err := client.New(s.Address, client.WithDefaultNamespace(s.Namespace))
	if err != nil {
		return nil, fmt.Errorf("connect containerd at %s: %w", s.Address, err)
	}
	return c, nil
}

// EnsureImage connects to containerd and provides the configured image
// (`mcpruntime-plugin-opensandbox image`).
func EnsureImage(ctx context.Context, s Settings, rebuild bool, log hclog.Logger) (*image.Ready, error) {
	c, err := connect(ctx, s, log)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, s.Namespace)
	return image.Ensure(ctx, c, image.Options{
		Name: s.Image, Packages: s.Packages, WorkDir: s.BuildDir, Snapshotter: s.Snapshotter,
		Rebuild: rebuild, NoBuild: !s.BuildImage && !rebuild, Logger: log,
	})
}
