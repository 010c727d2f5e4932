package mcp

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// Tool is an MCP tool as mcpruntime presents it to Python.
type Tool struct {
	// Name is the tool's MCP name.
	Name string
	// Description is the tool's description.
	Description string
	// Params are the tool's arguments: required ones first, each group in
	// the order of the input schema.
	Params []Param
	// Structured tells whether the tool declares an output schema (its
	// result is then a dict rather than text).
	Structured bool
	// Input and Output are the input and output schemas as JSON values
	// (Output nil when the tool declares none); stubs type from them.
	Input, Output map[string]any
	// TaskOnly is true for a tool that must be called as a task
	// (execution.taskSupport "required"), which this client cannot do.
	TaskOnly bool
}

// Param is one argument of a Tool.
type Param struct {
	// Name is the argument's name in the input schema.
	Name string
	// Required is true when the schema lists the argument as required.
	Required bool
	// Description is the argument's description, if any.
	Description string
	// Default is the schema's default value as JSON, if any.
	Default string
	// Schema is the argument's schema.
	Schema any
}

// toolFromMCP reads the parameters out of t's input schema.
func toolFromMCP(t mcp.Tool) Tool {
	out := Tool{Name: t.Name, Description: strings.TrimSpace(t.Description)}
	out.Structured = t.OutputSchema.Type != "" || len(t.RawOutputSchema) > 0
	out.TaskOnly = t.Execution != nil && t.Execution.TaskSupport == mcp.TaskSupportRequired
	out.Input = schemaMap(t.RawInputSchema, t.InputSchema)
	if out.Structured {
		out.Output = schemaMap(t.RawOutputSchema, t.OutputSchema)
	}
	props, required, order := t.InputSchema.Properties, t.InputSchema.Required, t.InputSchema.PropertyOrder
	if len(t.RawInputSchema) > 0 {
		var raw mcp.ToolArgumentsSchema
		if err := json.Unmarshal(t.RawInputSchema, &raw); err == nil {
			props, required, order = raw.Properties, raw.Required, raw.PropertyOrder
		}
	}
	names := orderedNames(props, order)
	isRequired := map[string]bool{}
	for _, r := range required {
		isRequired[r] = true
	}
	var req, opt []Param
	for _, name := range names {
		p := Param{Name: name, Required: isRequired[name], Schema: props[name]}
		if schema, ok := props[name].(map[string]any); ok {
			if d, ok := schema["description"].(string); ok {
				p.Description = strings.TrimSpace(d)
			}
			if d, ok := schema["default"]; ok {
				if b, err := json.Marshal(d); err == nil {
					p.Default = string(b)
				}
			}
		}
		if p.Required {
			req = append(req, p)
		} else {
			opt = append(opt, p)
		}
	}
	out.Params = append(req, opt...)
	return out
}

// schemaMap is a tool's schema as a JSON value: raw when the tool came
// with one, else typed marshalled.
func schemaMap(raw json.RawMessage, typed any) map[string]any {
	if len(raw) == 0 {
		b, err := json.Marshal(typed)
		if err != nil {
			return nil
		}
		raw = b
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	return m
}

// orderedNames returns the property names in schema order, falling back to
// sorted order for names the order does not list.
func orderedNames(props map[string]any, order []string) []string {
	seen := map[string]bool{}
	var names []string
	for _, n := range order {
		if _, ok := props[n]; ok && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	var rest []string
	for n := range props {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}
