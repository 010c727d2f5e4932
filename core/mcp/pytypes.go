package mcp

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// maxSchemaDepth bounds how deep a schema is followed; deeper parts are Any.
const maxSchemaDepth = 12

// typedDict is a TypedDict a stub module defines for an object schema.
type typedDict struct {
	name   string
	fields []tdField
}

type tdField struct {
	key      string // the property name, emitted as a JSON string literal
	hint     string
	required bool
}

// source is the definition of d in the functional TypedDict syntax, which
// takes any property name (keywords, dashes) as a string key.
func (d typedDict) source() string {
	items := make([]string, len(d.fields))
	for i, f := range d.fields {
		h := f.hint
		if !f.required {
			h = "NotRequired[" + h + "]"
		}
		items[i] = pyString(f.key) + ": " + h
	}
	return fmt.Sprintf("%s = TypedDict(%s, {%s})\n", d.name, pyString(d.name), strings.Join(items, ", "))
}

// pyTyper turns the JSON schemas of one stub module's tools into Python
// type hints, defining a TypedDict for every object schema with
// properties. Every name it writes comes from the module's namer (so it is
// an identifier that collides with nothing) and every value from pyString
// or a JSON number, so no schema can inject code.
type pyTyper struct {
	names *namer
	defs  []typedDict
	// byShape maps a TypedDict's rendered fields to its name, so equal
	// shapes (an input and an output of the same entity) share one.
	byShape map[string]string
	// root is the schema whose $defs / definitions a $ref resolves
	// against; refs caches each resolved ref's hint.
	root map[string]any
	refs map[string]string
}

func newPyTyper(names *namer) *pyTyper {
	return &pyTyper{names: names, byShape: map[string]string{}}
}

// forRoot starts the schema of another tool argument list or result.
func (g *pyTyper) forRoot(root map[string]any) {
	g.root, g.refs = root, map[string]string{}
}

// hint returns the Python type hint of schema; name suggests the name of a
// TypedDict it may define, owner the prefix that resolves a clash.
func (g *pyTyper) hint(schema any, name, owner string) string {
	return g.hintAt(schema, name, owner, 0)
}

func (g *pyTyper) hintAt(schema any, name, owner string, depth int) string {
	s, ok := schema.(map[string]any)
	if !ok || depth > maxSchemaDepth {
		if b, ok := schema.(bool); ok && !b {
			return "None" // a schema that nothing matches
		}
		return "Any"
	}
	if ref, ok := s["$ref"].(string); ok {
		return g.ref(ref, owner, depth)
	}
	if lit := literal(s); lit != "" {
		return lit
	}
	if alts, ok := firstAlternatives(s); ok {
		var hints []string
		for _, a := range alts {
			hints = addHint(hints, g.hintAt(a, name, owner, depth+1))
		}
		return union(hints)
	}
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		return g.hintAt(all[0], name, owner, depth+1)
	}
	types := schemaTypes(s)
	if len(types) == 0 {
		if _, ok := s["properties"].(map[string]any); ok {
			types = []string{"object"}
		} else if _, ok := s["items"]; ok {
			types = []string{"array"}
		}
	}
	var hints []string
	for _, t := range types {
		var h string
		switch t {
		case "string":
			h = "str"
		case "integer":
			h = "int"
		case "number":
			h = "float"
		case "boolean":
			h = "bool"
		case "null":
			h = "None"
		case "array":
			h = "list[" + g.hintAt(s["items"], singular(name), owner, depth+1) + "]"
		case "object":
			h = g.object(s, name, owner, depth)
		default:
			return "Any"
		}
		hints = addHint(hints, h)
	}
	return union(hints)
}

// object is a TypedDict for an object schema with properties, else a dict.
func (g *pyTyper) object(s map[string]any, name, owner string, depth int) string {
	props, _ := s["properties"].(map[string]any)
	if len(props) == 0 {
		if extra, ok := s["additionalProperties"].(map[string]any); ok {
			return "dict[str, " + g.hintAt(extra, singular(name), owner, depth+1) + "]"
		}
		return "dict[str, Any]"
	}
	required := map[string]bool{}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if r, ok := r.(string); ok {
				required[r] = true
			}
		}
	}
	if title, ok := s["title"].(string); ok && identifier(title, "") == title {
		name = title
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := typedDict{}
	for _, k := range orderedNames(props, propertyOrder(s, keys)) {
		d.fields = append(d.fields, tdField{key: k, required: required[k],
			hint: g.hintAt(props[k], camel(k), camel(name), depth+1)})
	}
	shape := d.shapeKey()
	if n, ok := g.byShape[shape]; ok {
		return n
	}
	d.name = g.className(name, owner)
	g.byShape[shape] = d.name
	g.defs = append(g.defs, d)
	return d.name
}

func (d typedDict) shapeKey() string {
	var b strings.Builder
	for _, f := range d.fields {
		fmt.Fprintf(&b, "%q:%s:%v;", f.key, f.hint, f.required)
	}
	return b.String()
}

// className picks the TypedDict's name: name itself when free, else owner
// + name, else a numbered variant.
func (g *pyTyper) className(name, owner string) string {
	base := identifier(camel(name), "T")
	if !g.names.taken[base] {
		return g.names.name(base, "T")
	}
	return g.names.name(identifier(camel(owner)+camel(name), "T"), "T")
}

// ref resolves a local $ref ("#/$defs/X", "#/definitions/X").
func (g *pyTyper) ref(ref, owner string, depth int) string {
	if h, ok := g.refs[ref]; ok {
		return h
	}
	var target any
	var name string
	for _, prefix := range []string{"#/$defs/", "#/definitions/"} {
		if rest, ok := strings.CutPrefix(ref, prefix); ok {
			defs, _ := g.root[strings.Trim(prefix[2:], "/")].(map[string]any)
			target, name = defs[rest], rest
		}
	}
	if ref == "#" {
		target, name = g.root, owner
	}
	if target == nil {
		return "Any"
	}
	// A recursive type refers to itself as a plain dict.
	g.refs[ref] = "dict[str, Any]"
	h := g.hintAt(target, name, owner, depth+1)
	g.refs[ref] = h
	return h
}

// propertyOrder is the schema's declared property order, if it has one.
func propertyOrder(s map[string]any, fallback []string) []string {
	if order, ok := s["propertyOrder"].([]any); ok {
		out := make([]string, 0, len(order))
		for _, o := range order {
			if o, ok := o.(string); ok {
				out = append(out, o)
			}
		}
		return out
	}
	return fallback
}

func firstAlternatives(s map[string]any) ([]any, bool) {
	for _, key := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[key].([]any); ok && len(alts) > 0 {
			return alts, true
		}
	}
	return nil, false
}

func schemaTypes(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, v := range t {
			if v, ok := v.(string); ok {
				out = append(out, v)
			}
		}
		return out
	}
	return nil
}

// literal is Literal[...] for an enum or const of strings, integers,
// booleans and null ("" for anything else: Literal takes no floats).
func literal(s map[string]any) string {
	var values []any
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		values = e
	} else if c, ok := s["const"]; ok {
		values = []any{c}
	} else {
		return ""
	}
	parts := make([]string, 0, len(values))
	for _, v := range values {
		switch v := v.(type) {
		case string:
			parts = append(parts, pyString(v))
		case bool:
			parts = append(parts, map[bool]string{true: "True", false: "False"}[v])
		case nil:
			parts = append(parts, "None")
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return ""
			}
			parts = append(parts, strconv.FormatInt(int64(v), 10))
		default:
			return ""
		}
	}
	return "Literal[" + strings.Join(parts, ", ") + "]"
}

func addHint(hints []string, h string) []string {
	for _, x := range hints {
		if x == h {
			return hints
		}
	}
	return append(hints, h)
}

// union joins hints with |, Any absorbing the rest and None last.
func union(hints []string) string {
	var out []string
	none := false
	for _, h := range hints {
		switch h {
		case "Any":
			return "Any"
		case "None":
			none = true
		default:
			out = append(out, h)
		}
	}
	if none {
		out = append(out, "None")
	}
	if len(out) == 0 {
		return "Any"
	}
	return strings.Join(out, " | ")
}

// camel turns a property or tool name into CamelCase ("entity_type",
// "entity-type" -> "EntityType"); the result still goes through identifier.
func camel(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			if up {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

// singular names an array's item after the array ("entities" -> "Entity").
func singular(name string) string {
	switch {
	case strings.HasSuffix(name, "ies") && len(name) > 3:
		return name[:len(name)-3] + "y"
	case strings.HasSuffix(name, "sses"), strings.HasSuffix(name, "xes"):
		return name[:len(name)-2]
	case strings.HasSuffix(name, "s") && !strings.HasSuffix(name, "ss") && len(name) > 1:
		return name[:len(name)-1]
	}
	return name + "Item"
}
