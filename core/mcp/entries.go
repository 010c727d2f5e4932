package mcp

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/mcpruntime/mcpruntime/core/catalog"
)

// ToolEntries lists the tools for the catalog (catalog.ToolLister), in
// runtime.hcl and server order: what the prompt ranks and search_tools
// finds.
func (h *Hub) ToolEntries() []catalog.Entry {
	var out []catalog.Entry
	for _, m := range h.layout() {
		for _, f := range m.funcs {
			sig := fmt.Sprintf("%s(%s)", f.name, listedParams(f))
			if f.tool.Structured {
				sig += " -> " + f.ret
			}
			out = append(out, catalog.Entry{Kind: catalog.KindTool, Name: "tools." + m.module + "." + f.name,
				Signature: sig, Summary: f.tool.Description, Import: "from tools." + m.module + " import " + f.name})
		}
	}
	return out
}

// ToolSource is the generated stub of a tool ("tools.<module>.<function>"):
// the TypedDicts of its module, then the function with its docstring.
func (h *Hub) ToolSource(name string) (string, bool) {
	for _, m := range h.layout() {
		for _, f := range m.funcs {
			if "tools."+m.module+"."+f.name != name {
				continue
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "# from tools.%s import %s\n\n", m.module, f.name)
			for _, t := range m.types {
				b.WriteString(t.source() + "\n")
			}
			writeFunc(&b, f)
			return b.String(), true
		}
	}
	return "", false
}

// Unavailable names the servers whose last start failed, with the reason
// (catalog.Unavailabler): the prompt tells the model not to count on them.
func (h *Hub) Unavailable() map[string]string {
	out := map[string]string{}
	for _, s := range h.Status() {
		if s.State == StateUnavailable {
			out[s.Name] = strings.TrimSpace(s.Reason)
		}
	}
	return out
}

// listedParams is a tool's parameters as the prompt shows them.
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
