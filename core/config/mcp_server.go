package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// mcpServeBlock mirrors `mcp_serve { ... }` as written.
type mcpServeBlock struct {
	MaxConcurrent    *int           `hcl:"max_concurrent,optional"`
	OutputLimit      hcl.Expression `hcl:"output_limit,optional"`
	ProgressInterval hcl.Expression `hcl:"progress_interval,optional"`
	Range            hcl.Range      `hcl:",def_range"`
}

// MCPServe configures mcpruntime as an MCP server (`mcpruntime mcp` and
// /mcp on `serve` and the session daemon). Zero fields mean the server's
// defaults.
type MCPServe struct {
	// MaxConcurrent bounds execute_python calls running at once; more
	// wait, management calls (list_sessions, ...) never do.
	MaxConcurrent int
	// OutputLimit caps each of stdout and stderr returned to the client;
	// longer output keeps its head and tail.
	OutputLimit int64
	// ProgressInterval is the shortest gap between two progress
	// notifications of one call.
	ProgressInterval time.Duration
}

func buildMCPServe(ctx *hcl.EvalContext, b *mcpServeBlock, diags *hcl.Diagnostics) MCPServe {
	var m MCPServe
	if b == nil {
		return m
	}
	if b.MaxConcurrent != nil {
		if *b.MaxConcurrent < 1 {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid max_concurrent",
				Detail: "mcp_serve.max_concurrent must be at least 1.", Subject: b.Range.Ptr()})
		}
		m.MaxConcurrent = *b.MaxConcurrent
	}
	before := len(*diags)
	m.OutputLimit = size(ctx, b.OutputLimit, 0, diags)
	if len(*diags) == before && m.OutputLimit > 0 && m.OutputLimit < 1024 {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mcp_serve.output_limit",
			Detail: "The limit must be at least 1KiB.", Subject: b.OutputLimit.Range().Ptr()})
	}
	m.ProgressInterval = duration(ctx, b.ProgressInterval, 0, diags)
	return m
}
