package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Settings is the decoded `config { ... }` block of the backend.
type Settings struct {
	Address       string   `json:"address"`
	Region        string   `json:"region"`
	Namespace     string   `json:"namespace"`
	Datacenters   []string `json:"datacenters"`
	NodePool      string   `json:"node_pool"`
	Token         string   `json:"token"`
	CACert        string   `json:"ca_cert"`
	ClientCert    string   `json:"client_cert"`
	ClientKey     string   `json:"client_key"`
	TLSServerName string   `json:"tls_server_name"`
	TLSSkipVerify bool     `json:"tls_skip_verify"`
	Driver        string   `json:"driver"`
	Image         string   `json:"image"`
	Python        string   `json:"python"`
	NetworkMode   string   `json:"network_mode"`
	Memory        string   `json:"memory"`
	CPU           float64  `json:"cpu"`
	Pids          float64  `json:"pids"`
	Constraints   []string `json:"constraints"`
	Affinities    []string `json:"affinities"`
	JobPrefix     string   `json:"job_prefix"`
	// RecoveryGrace is how long the jobs of a session whose plugin process
	// died are kept for a RecoverSessions call.
	RecoveryGrace    string `json:"recovery_grace"`
	PlacementTimeout string `json:"placement_timeout"`

	memoryBytes      int64
	recoveryGrace    time.Duration
	placementTimeout time.Duration
}

// DefaultSettings are what an empty config block means.
func DefaultSettings() Settings {
	return Settings{
		Datacenters: []string{"*"},
		Driver:      "exec",
		Image:       "python:3.11-slim",
		Python:      "/usr/bin/python3",
		NetworkMode: "cni/mcpruntime-isolated",
		Memory:      "1GiB",
		CPU:         100,
		Pids:        512,
		JobPrefix:   "mcpruntime",
		// The core recovers sessions right after it restarted a plugin.
		RecoveryGrace:    "60s",
		PlacementTimeout: "60s",
	}
}

// configSpec is the schema published to the core.
func configSpec() *sdk.ConfigSpec {
	d := DefaultSettings()
	return &sdk.ConfigSpec{Attributes: []sdk.ConfigAttribute{
		{Name: "address", Type: sdk.TypeString, Description: "Nomad HTTP API address (default: NOMAD_ADDR, then the cluster `make -C plugins/nomad cluster` started, then http://127.0.0.1:4646)"},
		{Name: "region", Type: sdk.TypeString, Description: "Nomad region (default: NOMAD_REGION, else the agent's)"},
		{Name: "namespace", Type: sdk.TypeString, Description: "Nomad namespace of the session jobs (default: NOMAD_NAMESPACE, else default)"},
		{Name: "datacenters", Type: sdk.TypeStringList, Default: d.Datacenters, Description: "datacenters the session jobs may run in"},
		{Name: "node_pool", Type: sdk.TypeString, Description: "node pool of the session jobs (empty: default)"},
		{Name: "token", Type: sdk.TypeString, Description: "ACL token (default: NOMAD_TOKEN)"},
		{Name: "ca_cert", Type: sdk.TypeString, Description: "CA certificate for TLS (default: NOMAD_CACERT)"},
		{Name: "client_cert", Type: sdk.TypeString, Description: "client certificate for mutual TLS (default: NOMAD_CLIENT_CERT)"},
		{Name: "client_key", Type: sdk.TypeString, Description: "client key for mutual TLS (default: NOMAD_CLIENT_KEY)"},
		{Name: "tls_server_name", Type: sdk.TypeString, Description: "server name checked in the agents' certificates (default: NOMAD_TLS_SERVER_NAME)"},
		{Name: "tls_skip_verify", Type: sdk.TypeBool, Default: false, Description: "do not verify the agents' certificates (default: NOMAD_SKIP_VERIFY)"},
		{Name: "driver", Type: sdk.TypeString, Default: d.Driver, Description: `task driver: "exec" (chroot of the client's chroot_env, cgroups, pid namespace) or "docker"`},
		{Name: "image", Type: sdk.TypeString, Default: d.Image, Description: "container image with python3 (driver docker)"},
		{Name: "python", Type: sdk.TypeString, Default: d.Python, Description: "path of python3 (3.11+) inside the sandbox"},
		{Name: "network_mode", Type: sdk.TypeString, Default: d.NetworkMode, Description: `group network mode: "cni/NAME" (a CNI network; the default is a loopback-only one every client must define, see the README), "none", "bridge" or "host" (the last two allow egress)`},
		{Name: "memory", Type: sdk.TypeSize, Default: d.Memory, Description: "memory of a session's allocation when its limits set none"},
		{Name: "cpu", Type: sdk.TypeNumber, Default: d.CPU, Description: "CPU (MHz) reserved for a session's allocation; a session's cpu_millis maps to cpu_millis/1000 of a core"},
		{Name: "pids", Type: sdk.TypeNumber, Default: d.Pids, Description: "RLIMIT_NPROC of a session's processes (counted per user on a node)"},
		{Name: "constraints", Type: sdk.TypeStringList, Description: `placement constraints, "LEFT OPERATOR RIGHT" each, e.g. "${node.class} = sandbox"`},
		{Name: "affinities", Type: sdk.TypeStringList, Description: `placement affinities, "LEFT OPERATOR RIGHT [WEIGHT]" each`},
		{Name: "job_prefix", Type: sdk.TypeString, Default: d.JobPrefix, Description: "prefix of the session jobs' ids"},
		{Name: "recovery_grace", Type: sdk.TypeDuration, Default: d.RecoveryGrace, Description: "how long a session's job outlives its crashed plugin process, waiting for the restarted plugin to recover it"},
		{Name: "placement_timeout", Type: sdk.TypeDuration, Default: d.PlacementTimeout, Description: "how long a new session waits for its allocation to run"},
	}}
}

var prefixRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// decodeSettings applies cfg over the defaults and validates it.
func decodeSettings(cfg *sdk.Config) (Settings, error) {
	s := DefaultSettings()
	if err := cfg.Decode(&s); err != nil {
		return s, err
	}
	var err error
	if s.memoryBytes, err = sdk.ParseSize(s.Memory); err != nil {
		return s, fmt.Errorf("config memory: %w", err)
	}
	if s.recoveryGrace, err = time.ParseDuration(s.RecoveryGrace); err != nil || s.recoveryGrace < 0 {
		return s, fmt.Errorf("config recovery_grace %q: want a duration such as 60s", s.RecoveryGrace)
	}
	if s.placementTimeout, err = time.ParseDuration(s.PlacementTimeout); err != nil || s.placementTimeout <= 0 {
		return s, fmt.Errorf("config placement_timeout %q: want a duration such as 60s", s.PlacementTimeout)
	}
	switch {
	case s.Driver != "exec" && s.Driver != "docker":
		return s, fmt.Errorf("config driver %q: want exec or docker", s.Driver)
	case s.NetworkMode != "none" && s.NetworkMode != "bridge" && s.NetworkMode != "host" && !strings.HasPrefix(s.NetworkMode, "cni/"):
		return s, fmt.Errorf("config network_mode %q: want cni/NAME, none, bridge or host", s.NetworkMode)
	case s.Python == "" || !strings.HasPrefix(s.Python, "/"):
		return s, fmt.Errorf("config python %q: want an absolute path", s.Python)
	case !prefixRe.MatchString(s.JobPrefix):
		return s, fmt.Errorf("config job_prefix %q: want lowercase letters, digits and '-'", s.JobPrefix)
	case s.CPU < 0 || s.Pids < 0 || s.memoryBytes < 0:
		return s, fmt.Errorf("config cpu/pids/memory: must not be negative")
	case len(s.Datacenters) == 0:
		return s, fmt.Errorf("config datacenters: empty")
	}
	for _, c := range s.Constraints {
		if _, err := parseConstraint(c); err != nil {
			return s, fmt.Errorf("config constraints: %w", err)
		}
	}
	for _, a := range s.Affinities {
		if _, err := parseAffinity(a); err != nil {
			return s, fmt.Errorf("config affinities: %w", err)
		}
	}
	return s, nil
}

// clientConfig is the Nomad API client configuration: the block's values,
// else the standard NOMAD_* variables (read by name here: the core passes
// only those runtime.hcl names in pass_env), else the local cluster.
func (s Settings) clientConfig() *api.Config {
	c := &api.Config{
		Address:   firstOf(s.Address, os.Getenv("NOMAD_ADDR"), localClusterAddr(), "http://127.0.0.1:4646"),
		Region:    firstOf(s.Region, os.Getenv("NOMAD_REGION")),
		Namespace: firstOf(s.Namespace, os.Getenv("NOMAD_NAMESPACE")),
		SecretID:  firstOf(s.Token, os.Getenv("NOMAD_TOKEN")),
		TLSConfig: &api.TLSConfig{
			CACert:        firstOf(s.CACert, os.Getenv("NOMAD_CACERT")),
			ClientCert:    firstOf(s.ClientCert, os.Getenv("NOMAD_CLIENT_CERT")),
			ClientKey:     firstOf(s.ClientKey, os.Getenv("NOMAD_CLIENT_KEY")),
			TLSServerName: firstOf(s.TLSServerName, os.Getenv("NOMAD_TLS_SERVER_NAME")),
			Insecure:      s.TLSSkipVerify || envBool("NOMAD_SKIP_VERIFY"),
		},
	}
	return c
}

// LocalClusterAddrFile is where `make -C plugins/nomad cluster` records
// the address of the cluster it started, for plugins launched without
// NOMAD_ADDR.
func LocalClusterAddrFile() string {
	base := os.Getenv("MCPRUNTIME_BUILD_CACHE")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache", "mcpruntime", "build")
	}
	return filepath.Join(filepath.Dir(base), "nomad-cluster-addr")
}

func localClusterAddr() string {
	f := LocalClusterAddrFile()
	if f == "" {
		return ""
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func envBool(k string) bool {
	v, err := strconv.ParseBool(os.Getenv(k))
	return err == nil && v
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseConstraint reads "LEFT OPERATOR RIGHT" (RIGHT may be empty for
// operators such as is_set).
func parseConstraint(s string) (*api.Constraint, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return nil, fmt.Errorf("%q: want \"LEFT OPERATOR RIGHT\"", s)
	}
	c := &api.Constraint{LTarget: f[0], Operand: f[1]}
	if len(f) == 3 {
		c.RTarget = f[2]
	}
	return c, nil
}

// parseAffinity reads "LEFT OPERATOR RIGHT [WEIGHT]".
func parseAffinity(s string) (*api.Affinity, error) {
	f := strings.Fields(s)
	if len(f) < 3 || len(f) > 4 {
		return nil, fmt.Errorf("%q: want \"LEFT OPERATOR RIGHT [WEIGHT]\"", s)
	}
	a := &api.Affinity{LTarget: f[0], Operand: f[1], RTarget: f[2]}
	if len(f) == 4 {
		w, err := strconv.ParseInt(f[3], 10, 8)
		if err != nil || w < -100 || w > 100 || w == 0 {
			return nil, fmt.Errorf("%q: weight must be -100..100, not 0", s)
		}
		w8 := int8(w)
		a.Weight = &w8
	}
	return a, nil
}
