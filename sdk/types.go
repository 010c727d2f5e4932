package sdk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Isolation says what separates sandbox code from the host.
type Isolation string

// Isolation levels, weakest first.
const (
	IsolationProcess   Isolation = "process"
	IsolationWasm      Isolation = "wasm"
	IsolationContainer Isolation = "container"
	IsolationMicroVM   Isolation = "microvm"
)

// Capabilities are what a backend declares it can do. The core asks for
// them instead of special-casing backends by name.
type Capabilities struct {
	// PersistentSessions: variables survive between Execute calls.
	PersistentSessions bool `json:"persistent_sessions"`
	// Snapshots: Snapshot and Restore are implemented.
	Snapshots bool `json:"snapshots"`
	// Streaming: output events are delivered while code runs.
	Streaming bool `json:"streaming"`
	// HostCalls: sandbox code can reach the Host service (ask_llm, tools).
	HostCalls bool `json:"host_calls"`
	// Isolation is the boundary between sandbox code and the host.
	Isolation Isolation `json:"isolation"`
	// Languages the backend executes, e.g. "python".
	Languages []string `json:"languages"`
	// EnforcedLimits are the session limits the backend enforces (Limit*
	// names). The conformance suite checks each one declared; the core
	// tells a client which of its limits apply.
	EnforcedLimits []string `json:"enforced_limits,omitempty"`
	// Libraries are notable packages sandbox code can import ("numpy",
	// "pandas", "matplotlib"), so a client or an agent knows what it may use.
	Libraries []string `json:"libraries,omitempty"`
}

// Names of session limits, for Capabilities.EnforcedLimits.
const (
	LimitTimeout = "timeout"
	LimitMemory  = "memory"
	LimitOutput  = "output"
	LimitCPU     = "cpu"
	LimitPids    = "pids"
)

// Info describes a backend plugin.
type Info struct {
	Name             string       `json:"name"`
	Version          string       `json:"version"`
	Description      string       `json:"description,omitempty"`
	ProtocolVersions []int        `json:"protocol_versions"`
	Capabilities     Capabilities `json:"capabilities"`
}

// Config attribute types a plugin may declare in its ConfigSpec.
const (
	TypeString     = "string"
	TypeNumber     = "number"
	TypeBool       = "bool"
	TypeStringList = "list(string)"
	TypeStringMap  = "map(string)"
	// TypeDuration is a string such as "30s", checked by the core.
	TypeDuration = "duration"
	// TypeSize is a string such as "512MiB", checked by the core.
	TypeSize = "size"
)

// ConfigAttribute declares one attribute of a plugin's config block.
type ConfigAttribute struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required,omitempty"`
	Default     any    `json:"default,omitempty"`
	Description string `json:"description,omitempty"`
}

// ConfigSpec is the schema of the `config { ... }` block a plugin accepts in
// runtime.hcl. The core decodes the block against it, so mistakes are
// reported at the file, line and column where the user made them.
type ConfigSpec struct {
	Attributes []ConfigAttribute `json:"attributes"`
}

// Config is what the core hands a plugin in Configure.
type Config struct {
	// JSON is the decoded config block as a JSON object (defaults applied).
	JSON json.RawMessage
	// PoolSize is how many sessions to keep started ahead of demand.
	PoolSize int
	// StateDir is a directory for caches and state that outlive the plugin.
	StateDir string
}

// Decode unmarshals the plugin's config block into v.
func (c *Config) Decode(v any) error {
	if len(c.JSON) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.JSON, v); err != nil {
		return fmt.Errorf("decode plugin config: %w", err)
	}
	return nil
}

// Limits bound one session. Zero means "backend default".
type Limits struct {
	Timeout     time.Duration `json:"timeout"`
	MemoryBytes int64         `json:"memory_bytes"`
	OutputBytes int64         `json:"output_bytes"`
	CPUMillis   int64         `json:"cpu_millis"`
	Pids        int64         `json:"pids"`
}

// Mount makes a host directory visible inside the sandbox.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

// Well-known paths inside every sandbox.
const (
	// GuestWorkspace is where the session workspace is mounted read-write.
	GuestWorkspace = "/workspace"
	// GuestLib is on sys.path; skills and tool stubs are mounted below it.
	GuestLib = "/mcpruntime/lib"
	// GuestSkills holds the skill modules (`from skills.x import run`).
	GuestSkills = GuestLib + "/skills"
	// GuestTools holds the MCP tool stubs (`from tools.files import read`).
	GuestTools = GuestLib + "/tools"
)

// SessionSpec is everything a backend needs to start a session.
type SessionSpec struct {
	ID        string
	Workspace string
	Limits    Limits
	Env       map[string]string
	Mounts    []Mount
	// Host answers sandbox->host calls for this session; nil when the core
	// offers none.
	Host Host
}

// ExecRequest runs code in a session.
type ExecRequest struct {
	SessionID string
	Code      string
	// Timeout overrides the session's wall-clock limit when positive.
	Timeout time.Duration
}

// EventKind tells what an Event carries.
type EventKind int

// Event kinds delivered while code runs.
const (
	EventStdout EventKind = iota + 1
	EventStderr
	EventHostCall
	// EventDisplay carries a rich output (Event.Display): display(obj), a
	// cell's last expression with a rich representation, a plot.
	EventDisplay
)

// Event is streamed while code runs.
type Event struct {
	Kind     EventKind
	Data     []byte
	HostCall *HostCallNotice
	Display  *Display
}

// HostCallNotice reports a host call made by sandbox code.
type HostCallNotice struct {
	Method   string        `json:"method"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// ErrorKind classifies why an execution did not succeed.
type ErrorKind string

// Error kinds of an ExecResult.
const (
	ErrorNone        ErrorKind = ""
	ErrorException   ErrorKind = "exception"
	ErrorSyntax      ErrorKind = "syntax"
	ErrorExit        ErrorKind = "exit"
	ErrorTimeout     ErrorKind = "timeout"
	ErrorMemory      ErrorKind = "memory"
	ErrorKernelDied  ErrorKind = "kernel_died"
	ErrorSessionLost ErrorKind = "session_lost"
	ErrorInternal    ErrorKind = "internal"
)

// Exception describes a Python exception raised by sandbox code.
type Exception struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

// ExecResult is the outcome of one Execute.
type ExecResult struct {
	ExitCode        int           `json:"exit_code"`
	Error           ErrorKind     `json:"error,omitempty"`
	Message         string        `json:"message,omitempty"`
	Exception       *Exception    `json:"exception,omitempty"`
	Duration        time.Duration `json:"duration"`
	OutputTruncated bool          `json:"output_truncated,omitempty"`
	// StateLost: the session's variables did not survive this execution.
	StateLost bool `json:"state_lost,omitempty"`
	// Limits are the limits the execution ran under, filled in by the host
	// that clamped the client's request to the configured ones. Backends
	// leave it nil; it does not cross the plugin protocol.
	Limits *AppliedLimits `json:"limits,omitempty"`
	// ReplayError says what of this execution the core could not record
	// (the replay log line, the workspace snapshot, an earlier step's
	// state): the execution itself ran. Set by the core, not by plugins;
	// it does not cross the plugin protocol.
	ReplayError string `json:"replay_error,omitempty"`
}

// AppliedLimits are an execution's effective limits (zero: unlimited).
type AppliedLimits struct {
	TimeoutMs   int64   `json:"timeout_ms"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	OutputBytes int64   `json:"output_bytes,omitempty"`
	CPUs        float64 `json:"cpus,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	// RequestedTimeoutMs is what the client asked for, when it asked.
	RequestedTimeoutMs int64 `json:"requested_timeout_ms,omitempty"`
	// Clamped: the client asked for more than the configured limit, which
	// was applied instead.
	Clamped bool `json:"clamped,omitempty"`
}

// OK reports whether the code ran to completion with exit status 0.
func (r *ExecResult) OK() bool { return r.ExitCode == 0 && r.Error == ErrorNone }

// Snapshot identifies a saved session state held by a backend.
type Snapshot struct {
	ID        string `json:"id"`
	SizeBytes int64  `json:"size_bytes"`
}

// Health is a backend's view of itself.
type Health struct {
	Healthy  bool   `json:"healthy"`
	Message  string `json:"message,omitempty"`
	Sessions int    `json:"sessions"`
}

// HostOwned reports whether a workspace path (slash-separated, relative to
// the workspace) belongs to the core rather than to sandbox code: the
// session daemon's state (.mcpruntime) and the replay store (.replay, except
// .replay/state, where the kernel writes the pickles of session state).
// Backends that copy the workspace into the sandbox instead of sharing it
// should not copy these in: they can be large and change while code runs.
func HostOwned(rel string) bool {
	switch {
	case rel == ".mcpruntime" || strings.HasPrefix(rel, ".mcpruntime/"):
		return true
	case rel == ".replay/state" || strings.HasPrefix(rel, ".replay/state/"):
		return false
	case strings.HasPrefix(rel, ".replay/"):
		return true
	}
	return false
}
