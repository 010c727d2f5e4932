// Package config reads runtime.hcl: which sandbox backend serves by default,
// how each backend is configured and limited, and the agent's settings.
// Every error points at the file, line and column where it was made.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// file mirrors runtime.hcl's blocks as written.
type file struct {
	Runtime    *runtimeBlock   `hcl:"runtime,block"`
	Sandboxes  []*sandboxBlock `hcl:"sandbox,block"`
	LLM        *llmBlock       `hcl:"llm,block"`
	MCPServers []*mcpBlock     `hcl:"mcp_server,block"`
	Skills     *skillsBlock    `hcl:"skills,block"`
	Server     *serverBlock    `hcl:"server,block"`
	Agent      *agentBlock     `hcl:"agent,block"`
	Replay     *replayBlock    `hcl:"replay,block"`
	MCPServe   *mcpServeBlock  `hcl:"mcp_serve,block"`
}

type runtimeBlock struct {
	Backend   *string        `hcl:"backend,optional"`
	Workspace *string        `hcl:"workspace,optional"`
	PluginDir *string        `hcl:"plugin_dir,optional"`
	StateDir  *string        `hcl:"state_dir,optional"`
	IdleExit  hcl.Expression `hcl:"daemon_idle_timeout,optional"`
	// Where each value was written, for messages about it.
	BackendRange   hcl.Range `hcl:"backend,attr_value_range"`
	WorkspaceRange hcl.Range `hcl:"workspace,attr_value_range"`
	PluginDirRange hcl.Range `hcl:"plugin_dir,attr_value_range"`
	StateDirRange  hcl.Range `hcl:"state_dir,attr_value_range"`
}

type sandboxBlock struct {
	Name   string       `hcl:"name,label"`
	Plugin *string      `hcl:"plugin,optional"`
	Pool   *poolBlock   `hcl:"pool,block"`
	Limits *limitsBlock `hcl:"limits,block"`
	Config *remainBlock `hcl:"config,block"`
	// Env and PassEnv extend the plugin's allow-listed environment.
	Env     map[string]string `hcl:"env,optional"`
	PassEnv []string          `hcl:"pass_env,optional"`
	Range   hcl.Range         `hcl:",def_range"`
	// PluginRange is where plugin's value was written.
	PluginRange hcl.Range `hcl:"plugin,attr_value_range"`
}

type poolBlock struct {
	Size *int `hcl:"size,optional"`
}

type limitsBlock struct {
	Timeout hcl.Expression `hcl:"timeout,optional"`
	Memory  hcl.Expression `hcl:"memory,optional"`
	Output  hcl.Expression `hcl:"output,optional"`
	CPU     *float64       `hcl:"cpus,optional"`
	Pids    *int64         `hcl:"pids,optional"`
}

type remainBlock struct {
	Body  hcl.Body  `hcl:",remain"`
	Range hcl.Range `hcl:",def_range"`
}

type llmBlock struct {
	BaseURL     *string        `hcl:"base_url,optional"`
	APIKey      *string        `hcl:"api_key,optional"`
	Model       *string        `hcl:"model,optional"`
	Temperature *float64       `hcl:"temperature,optional"`
	MaxTokens   *int           `hcl:"max_tokens,optional"`
	Vision      *bool          `hcl:"vision,optional"`
	Timeout     hcl.Expression `hcl:"timeout,optional"`
	Deadline    hcl.Expression `hcl:"deadline,optional"`
}

type mcpBlock struct {
	Name    string            `hcl:"name,label"`
	Command []string          `hcl:"command,optional"`
	Env     map[string]string `hcl:"env,optional"`
	PassEnv []string          `hcl:"pass_env,optional"`
	// URL and Headers reach a streamable-HTTP server instead of a command.
	URL          *string           `hcl:"url,optional"`
	Headers      map[string]string `hcl:"headers,optional"`
	Timeout      hcl.Expression    `hcl:"timeout,optional"`
	InitTimeout  hcl.Expression    `hcl:"init_timeout,optional"`
	ToolTimeouts hcl.Expression    `hcl:"tool_timeouts,optional"`
	Range        hcl.Range         `hcl:",def_range"`
	// CommandRange and URLRange are where command's and url's values were
	// written.
	CommandRange hcl.Range `hcl:"command,attr_value_range"`
	URLRange     hcl.Range `hcl:"url,attr_value_range"`
}

type skillsBlock struct {
	Dir      *string `hcl:"dir,optional"`
	AutoSave *bool   `hcl:"auto_save,optional"`
	// DirRange is where dir's value was written.
	DirRange hcl.Range `hcl:"dir,attr_value_range"`
}

type agentBlock struct {
	MaxSteps         *int           `hcl:"max_steps,optional"`
	StepTimeout      hcl.Expression `hcl:"step_timeout,optional"`
	Budget           hcl.Expression `hcl:"budget,optional"`
	ObservationLimit hcl.Expression `hcl:"observation_limit,optional"`
	AskLLMCalls      hcl.Expression `hcl:"ask_llm_calls,optional"`
	AskLLMTokens     hcl.Expression `hcl:"ask_llm_tokens,optional"`
	MaxDepth         hcl.Expression `hcl:"max_depth,optional"`
	ListingBudget    hcl.Expression `hcl:"listing_budget,optional"`
	InputLimit       hcl.Expression `hcl:"input_limit,optional"`
}

// Config is runtime.hcl decoded, with defaults applied and relative paths
// made absolute (relative to the file's directory).
type Config struct {
	// Path is the file read, empty when built-in defaults are in use.
	Path string
	// Dir is what relative paths are resolved against.
	Dir string

	Backend   string
	Workspace string
	PluginDir string
	StateDir  string
	// DaemonIdle is how long the session daemon lives without requests.
	DaemonIdle time.Duration

	Sandboxes map[string]*Sandbox
	LLM       LLM
	MCP       []MCPServer
	Skills    Skills
	Server    Server
	Agent     Agent
	Replay    Replay
	MCPServe  MCPServe

	src map[string]*hcl.File
	// backendRange is where runtime.hcl names the default backend (nil
	// when the built-in default applies).
	backendRange *hcl.Range
}

// Sandbox is one `sandbox "NAME" { ... }` block (or the defaults for a
// backend that has none).
type Sandbox struct {
	Name string
	// Plugin is an explicit plugin executable; empty means discovery.
	Plugin   string
	PoolSize int
	Limits   Limits
	// Env (NAME → value) and PassEnv (host variables passed by name) are
	// what the plugin process receives beyond host.AllowedEnv's base set.
	Env     map[string]string
	PassEnv []string
	// body is the plugin's own config block, decoded against the spec the
	// plugin publishes (see PluginConfig).
	body      hcl.Body
	bodyRange hcl.Range
}

// Limits bound every session of a backend.
type Limits struct {
	Timeout     time.Duration
	MemoryBytes int64
	OutputBytes int64
	CPUs        float64
	Pids        int64
}

// LLM configures the OpenAI-compatible chat endpoint.
type LLM struct {
	BaseURL     string
	APIKey      string
	Model       string
	Temperature float64
	MaxTokens   int
	// Vision: the model takes images; the agent sends it a step's plots
	// as image parts instead of describing them.
	Vision bool
	// Timeout bounds each attempt of a call.
	Timeout time.Duration
	// Deadline bounds a whole call: every attempt and the waits between
	// them (default DefaultLLMDeadline, and never less than Timeout).
	Deadline time.Duration
}

// MCPServer is an MCP server whose tools sandbox code may call: a command
// spoken to over stdio, or a URL spoken to over streamable HTTP (exactly
// one of the two).
type MCPServer struct {
	Name    string
	Command []string
	// Env (NAME → value) and PassEnv (host variables passed by name) are
	// what the server receives beyond host.AllowedEnv's base set.
	Env     map[string]string
	PassEnv []string
	// URL is a streamable-HTTP server's endpoint; Headers go with every
	// request to it (e.g. Authorization).
	URL     string
	Headers map[string]string
	// Timeout bounds each tool call and ToolTimeouts overrides it per tool
	// (zero: the runtime's default); InitTimeout bounds a start: launch,
	// initialize and list tools (zero: the runtime's default).
	Timeout      time.Duration
	ToolTimeouts map[string]time.Duration
	InitTimeout  time.Duration
}

// Skills configures the skill registry.
type Skills struct {
	Dir      string
	AutoSave bool
}

// Agent bounds `mcpruntime run`.
type Agent struct {
	MaxSteps         int
	StepTimeout      time.Duration
	Budget           time.Duration
	ObservationLimit int64
	// AskLLMCalls and AskLLMTokens bound the ask_llm calls of one run
	// (0: no bound).
	AskLLMCalls  int
	AskLLMTokens int64
	// MaxDepth bounds the nesting of ask_llm(recursive=True) sub-agents.
	MaxDepth int
	// ListingBudget is how many characters of the system prompt list
	// skills and tools (the most relevant to the task first).
	ListingBudget int
	// InputLimit bounds a run's input (run --context).
	InputLimit int64
}
