package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// DefaultBackend serves when runtime.hcl names none.
const DefaultBackend = "wasm"

// Defaults of the llm block: each attempt of a call, and a whole call with
// its retries.
const (
	DefaultLLMTimeout  = 120 * time.Second
	DefaultLLMDeadline = 3 * time.Minute
)

// Defaults for every backend's limits.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMemoryBytes = 512 << 20
	DefaultOutputBytes = 1 << 20
)

// Error carries HCL diagnostics; its message shows each one with its
// file:line:col and a snippet of the source.
type Error struct {
	Diags hcl.Diagnostics
	files map[string]*hcl.File
}

func (e *Error) Error() string {
	var buf bytes.Buffer
	w := hcl.NewDiagnosticTextWriter(&buf, e.files, 100, false)
	for i, d := range e.Diags {
		if i > 0 {
			buf.WriteString("\n")
		}
		if d.Subject != nil {
			fmt.Fprintf(&buf, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&buf, "%s\n", d.Summary)
		_ = w.WriteDiagnostic(d)
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n"))
}

func diagError(diags hcl.Diagnostics, files map[string]*hcl.File) error {
	if !diags.HasErrors() {
		return nil
	}
	return &Error{Diags: diags, files: files}
}

// evalContext offers env("NAME") and the usual string functions.
func evalContext() *hcl.EvalContext {
	env := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "name", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(os.Getenv(args[0].AsString())), nil
		},
	})
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"env":       env,
		"upper":     stdlib.UpperFunc,
		"lower":     stdlib.LowerFunc,
		"format":    stdlib.FormatFunc,
		"join":      stdlib.JoinFunc,
		"concat":    stdlib.ConcatFunc,
		"coalesce":  stdlib.CoalesceFunc,
		"trimspace": stdlib.TrimSpaceFunc,
		"split":     stdlib.SplitFunc,
	}}
}

// Load reads the file at path. A missing file is not an error when
// optional is true: built-in defaults apply, with paths relative to the
// current directory.
func Load(path string, optional bool) (*Config, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		wd, werr := os.Getwd()
		if werr != nil {
			return nil, werr
		}
		return build(&file{}, "", wd, nil, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return Parse(src, abs)
}

// Parse decodes runtime.hcl source; filename is used in messages and its
// directory anchors relative paths.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diagError(diags, p.Files())
	}
	var raw file
	diags = gohcl.DecodeBody(f.Body, evalContext(), &raw)
	// build goes on with whatever decoded, so that one run reports every
	// mistake of the file: its checks and the type errors above.
	c, err := build(&raw, filename, filepath.Dir(filename), p.Files(), diags)
	var cerr *Error
	if errors.As(err, &cerr) {
		explainUnsetEnv(cerr.Diags, unsetEnvCalls(f.Body))
	}
	return c, err
}

// build applies defaults and checks to a decoded file; diags are the
// decoder's, reported with build's own.
func build(raw *file, path, dir string, files map[string]*hcl.File, diags hcl.Diagnostics) (*Config, error) {
	c := &Config{Path: path, Dir: dir, src: files, Sandboxes: map[string]*Sandbox{}}
	ctx := evalContext()

	rt := raw.Runtime
	if rt == nil {
		rt = &runtimeBlock{}
	}
	nonEmpty("backend", rt.Backend, rt.BackendRange, &diags)
	nonEmpty("workspace", rt.Workspace, rt.WorkspaceRange, &diags)
	nonEmpty("plugin_dir", rt.PluginDir, rt.PluginDirRange, &diags)
	nonEmpty("state_dir", rt.StateDir, rt.StateDirRange, &diags)
	c.Backend = str(rt.Backend, DefaultBackend)
	if rt.Backend != nil {
		c.backendRange = rt.BackendRange.Ptr()
	}
	c.Workspace = c.abs(str(rt.Workspace, "./workspace"))
	if rt.PluginDir != nil {
		c.PluginDir = c.abs(*rt.PluginDir)
	} else {
		c.PluginDir = DefaultPluginDir()
	}
	// Beside runtime.hcl, not in the workspace (see runtimeFilesInWorkspace).
	c.StateDir = c.abs(str(rt.StateDir, ".mcpruntime"))
	c.DaemonIdle = duration(ctx, rt.IdleExit, 15*time.Minute, &diags)

	for _, sb := range raw.Sandboxes {
		if _, dup := c.Sandboxes[sb.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Duplicate sandbox block",
				Detail: fmt.Sprintf("A sandbox named %q is already defined.", sb.Name), Subject: sb.Range.Ptr(),
			})
			continue
		}
		s := DefaultSandbox(sb.Name)
		nonEmpty("plugin", sb.Plugin, sb.PluginRange, &diags)
		if sb.Plugin != nil {
			s.Plugin = c.abs(*sb.Plugin)
		}
		if sb.Pool != nil && sb.Pool.Size != nil {
			s.PoolSize = *sb.Pool.Size
		}
		if l := sb.Limits; l != nil {
			s.Limits.Timeout = duration(ctx, l.Timeout, s.Limits.Timeout, &diags)
			s.Limits.MemoryBytes = size(ctx, l.Memory, s.Limits.MemoryBytes, &diags)
			s.Limits.OutputBytes = size(ctx, l.Output, s.Limits.OutputBytes, &diags)
			if l.CPU != nil {
				s.Limits.CPUs = *l.CPU
			}
			if l.Pids != nil {
				s.Limits.Pids = *l.Pids
			}
		}
		if sb.Config != nil {
			s.body, s.bodyRange = sb.Config.Body, sb.Config.Range
		}
		s.Env, s.PassEnv = sb.Env, sb.PassEnv
		diags = append(diags, checkEnv(fmt.Sprintf("sandbox %q", sb.Name), sb.Env, sb.PassEnv, sb.Range)...)
		c.Sandboxes[sb.Name] = s
	}

	if l := raw.LLM; l != nil {
		c.LLM = LLM{BaseURL: str(l.BaseURL, ""), APIKey: str(l.APIKey, ""), Model: str(l.Model, "")}
		if l.Temperature != nil {
			c.LLM.Temperature = *l.Temperature
		}
		if l.MaxTokens != nil {
			c.LLM.MaxTokens = *l.MaxTokens
		}
		if l.Vision != nil {
			c.LLM.Vision = *l.Vision
		}
		c.LLM.Timeout = duration(ctx, l.Timeout, 0, &diags)
		c.LLM.Deadline = duration(ctx, l.Deadline, 0, &diags)
	}
	c.LLM.applyEnv()
	if c.LLM.Timeout == 0 {
		c.LLM.Timeout = DefaultLLMTimeout
	}
	if c.LLM.Deadline == 0 {
		// A longer attempt than the default deadline was asked for: the
		// deadline must leave room for one.
		c.LLM.Deadline = max(DefaultLLMDeadline, c.LLM.Timeout)
	}
	if c.LLM.Model == "" {
		c.LLM.Model = "gpt-4o-mini"
	}

	c.MCP = buildMCP(ctx, raw.MCPServers, &diags)
	c.Skills = Skills{Dir: c.abs("./skills"), AutoSave: true}
	if s := raw.Skills; s != nil {
		nonEmpty("dir", s.Dir, s.DirRange, &diags)
		if s.Dir != nil {
			c.Skills.Dir = c.abs(*s.Dir)
		}
		if s.AutoSave != nil {
			c.Skills.AutoSave = *s.AutoSave
		}
	}
	c.Server = buildServer(ctx, raw.Server, &diags)
	c.Agent = buildAgent(ctx, raw.Agent, &diags)
	c.Replay = buildReplay(ctx, raw.Replay, &diags)
	c.MCPServe = buildMCPServe(ctx, raw.MCPServe, &diags)
	diags = append(diags, c.runtimeFilesInWorkspace()...)
	sortDiags(diags)
	if err := diagError(diags, files); err != nil {
		return nil, err
	}
	return c, nil
}

func (l *LLM) applyEnv() {
	if v := os.Getenv("OPENAI_BASE_URL"); v != "" {
		l.BaseURL = v
	}
	if v := os.Getenv("OPENAI_API_KEY"); v != "" {
		l.APIKey = v
	}
	if v := os.Getenv("MCPRUNTIME_MODEL"); v != "" {
		l.Model = v
	}
}

// DefaultSandbox is the configuration of a backend without a block.
func DefaultSandbox(name string) *Sandbox {
	return &Sandbox{Name: name, PoolSize: 0, Limits: Limits{
		Timeout: DefaultTimeout, MemoryBytes: DefaultMemoryBytes, OutputBytes: DefaultOutputBytes,
	}}
}

// Sandbox returns the configuration of the named backend: its block, or
// defaults when runtime.hcl has none (any discovered plugin can be used).
func (c *Config) Sandbox(name string) *Sandbox {
	if s, ok := c.Sandboxes[name]; ok {
		return s
	}
	return DefaultSandbox(name)
}

// DefaultPluginDir is plugins/ beside the running executable, so the
// binary works from any directory.
func DefaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "plugins"
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), "plugins")
}

func (c *Config) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.Dir, p)
}

// nonEmpty reports a setting written with an empty value (often an env()
// of an unset variable) where a name or path is needed.
func nonEmpty(what string, v *string, rng hcl.Range, diags *hcl.Diagnostics) {
	if v == nil || strings.TrimSpace(*v) != "" {
		return
	}
	*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty " + what,
		Detail: fmt.Sprintf("%s needs a value; leave it out for the default.", what), Subject: rng.Ptr()})
}

// sortDiags orders diagnostics by where they point, so a file's mistakes
// read top to bottom (the decoder reports blocks by type, not by line).
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// present reports whether an optional expression attribute was written.
func present(expr hcl.Expression) bool {
	return expr != nil
}

func evalString(ctx *hcl.EvalContext, expr hcl.Expression, what string, diags *hcl.Diagnostics) (string, bool) {
	if !present(expr) {
		return "", false
	}
	v, d := expr.Value(ctx)
	*diags = append(*diags, d...)
	if d.HasErrors() {
		return "", false
	}
	if v.IsNull() {
		return "", false
	}
	if v.Type() == cty.Number {
		bf := v.AsBigFloat()
		return bf.Text('f', -1), true
	}
	if v.Type() != cty.String {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + what,
			Detail: fmt.Sprintf("Expected a string such as %s.", example(what)), Subject: expr.Range().Ptr()})
		return "", false
	}
	return v.AsString(), true
}

func example(what string) string {
	if what == "duration" {
		return `"30s" or "2m"`
	}
	return `"512MiB" or "1GB"`
}

func duration(ctx *hcl.EvalContext, expr hcl.Expression, def time.Duration, diags *hcl.Diagnostics) time.Duration {
	s, ok := evalString(ctx, expr, "duration", diags)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail: fmt.Sprintf("%q is not a duration; write it like \"30s\", \"1m30s\" or \"250ms\".", s), Subject: expr.Range().Ptr()})
		return def
	}
	return d
}

func size(ctx *hcl.EvalContext, expr hcl.Expression, def int64, diags *hcl.Diagnostics) int64 {
	s, ok := evalString(ctx, expr, "size", diags)
	if !ok {
		return def
	}
	n, err := sdk.ParseSize(s)
	if err != nil {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid size",
			Detail: err.Error() + ".", Subject: expr.Range().Ptr()})
		return def
	}
	return n
}
