package mcp

import (
	"fmt"
	"strings"
)

// maxListedDescription bounds a tool's description in the prompt listing.
const maxListedDescription = 200

// Listing describes the tools for a model's system prompt, one line per
// tool: `tools.<server>.<fn>(arg: type, ...) — description`. It is empty
// when there are no tools.
func (h *Hub) Listing() string {
	mods := h.layout()
	var b strings.Builder
	for _, m := range mods {
		for _, f := range m.funcs {
			fmt.Fprintf(&b, "- tools.%s.%s(%s)", m.module, f.name, listedParams(f))
			if f.tool.Structured {
				b.WriteString(" -> " + f.ret)
			}
			if d := summary(f.tool.Description); d != "" {
				b.WriteString(" — " + d)
			}
			b.WriteString("\n")
		}
	}
	if b.Len() == 0 {
		return ""
	}
	example := ""
	if m := firstWithTools(mods); m != nil {
		example = fmt.Sprintf(" (e.g. `from tools.%s import %s`)", m.module, m.funcs[0].name)
	}
	return "MCP tools you can call from your code" + example +
		"; each returns the tool's result (text, a dict for structured results, a list of parts with mcpruntime.Image/Audio/Resource for binary content), has an async form f.call_async(...) for asyncio.gather, and raises mcpruntime.ToolError (.server, .tool, .code) when the tool fails; the TypedDicts of the arguments are in the tool's module:\n" +
		b.String()
}

func firstWithTools(mods []stubModule) *stubModule {
	for i := range mods {
		if len(mods[i].funcs) > 0 {
			return &mods[i]
		}
	}
	return nil
}

func listedParams(f stubFunc) string {
	out := make([]string, len(f.tool.Params))
	for i, p := range f.tool.Params {
		out[i] = f.params[i] + ": " + f.hints[i]
		if !p.Required {
			out[i] += " = " + pyDefault(p.Default)
		}
	}
	return strings.Join(out, ", ")
}

// summary is the first paragraph of a description, on one line, clipped.
func summary(desc string) string {
	desc = strings.TrimSpace(desc)
	if i := strings.Index(desc, "\n\n"); i >= 0 {
		desc = desc[:i]
	}
	desc = strings.Join(strings.Fields(desc), " ")
	if r := []rune(desc); len(r) > maxListedDescription {
		desc = string(r[:maxListedDescription-1]) + "…"
	}
	return desc
}
