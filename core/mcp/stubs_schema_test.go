package mcp

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// schemaTools are tools as a server would list them (JSON), with nested
// objects, arrays of objects, enums, $ref, unions, an output schema, a
// task-only tool and hostile names, descriptions and enum values.
const schemaTools = `[
{"name": "create_entities", "description": "Create multiple new entities",
 "inputSchema": {"type": "object", "required": ["entities"], "properties": {
   "entities": {"type": "array", "items": {"type": "object", "required": ["name", "entityType", "observations"], "properties": {
     "name": {"type": "string"}, "entityType": {"type": "string"}, "observations": {"type": "array", "items": {"type": "string"}}}}}}},
 "outputSchema": {"type": "object", "required": ["entities"], "properties": {
   "entities": {"type": "array", "items": {"type": "object", "required": ["name", "entityType", "observations"], "properties": {
     "name": {"type": "string"}, "entityType": {"type": "string"}, "observations": {"type": "array", "items": {"type": "string"}}}}}}}},
{"name": "search", "description": "Search.",
 "inputSchema": {"type": "object", "required": ["query"], "$defs": {"Filter": {"type": "object", "properties": {
     "field": {"type": "string"}, "op": {"enum": ["eq", "ne", 3, true, null]}}, "required": ["field"]}},
   "properties": {
   "query": {"type": "string"},
   "mode": {"type": "string", "enum": ["fast", "deep"], "default": "fast"},
   "filters": {"type": "array", "items": {"$ref": "#/$defs/Filter"}},
   "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
   "extra": {"type": "object", "additionalProperties": {"type": "number"}},
   "tree": {"$ref": "#"}}}},
{"name": "long_job", "description": "Only as a task.", "execution": {"taskSupport": "required"},
 "inputSchema": {"type": "object", "properties": {}}},
{"name": "x\"); import os; os.system('touch PWNED') #", "description": "\"\"\" + __import__('os').system('touch PWNED') + \"\"\"\n\\\u2028end",
 "inputSchema": {"type": "object", "required": ["a\"b"], "properties": {
   "a\"b": {"type": "string", "enum": ["\"]; __import__('os').system('touch PWNED') #", "\\", "\n"]},
   "obj": {"type": "object", "title": "Evil\"); import os #", "properties": {"k\"]: int, 'x': __import__('os').system('touch PWNED'), #": {"type": "string"}}}}}}
]`

func schemaModule(t testing.TB) stubModule {
	t.Helper()
	var raw []mcp.Tool
	if err := json.Unmarshal([]byte(schemaTools), &raw); err != nil {
		t.Fatal(err)
	}
	tools := make([]Tool, len(raw))
	for i, r := range raw {
		tools[i] = toolFromMCP(r)
	}
	return moduleLayout("mem", "mem", tools, "")
}

const schemaCheck = `
import inspect, sys, types, typing
fake = types.ModuleType("mcpruntime")
fake.call_tool = lambda server, tool, arguments=None: [server, tool, arguments]
sys.modules["mcpruntime"] = fake
import mem
E = mem.Entity
assert E.__required_keys__ == {"name", "entityType", "observations"}, E.__required_keys__
assert E.__annotations__ == {"name": str, "entityType": str, "observations": list[str]}, E.__annotations__
sig = inspect.signature(mem.create_entities)
assert str(sig) == "(entities: list[mem.Entity]) -> mem.CreateEntitiesResult", sig
assert mem.CreateEntitiesResult.__annotations__ == {"entities": list[E]}
s = inspect.signature(mem.search)
assert str(s.parameters["mode"]) == "mode: Optional[Literal['fast', 'deep']] = 'fast'" or str(s.parameters["mode"]) == "mode: Literal['fast', 'deep'] | None = 'fast'", s.parameters["mode"]
assert s.parameters["filters"].annotation == list[mem.Filter] | None, s.parameters["filters"]
assert mem.Filter.__required_keys__ == {"field"} and mem.Filter.__optional_keys__ == {"op"}
assert mem.Filter.__annotations__["op"] == typing.NotRequired[typing.Literal["eq", "ne", 3, True, None]], mem.Filter.__annotations__
assert s.parameters["limit"].annotation == int | None
assert s.parameters["extra"].annotation == dict[str, float] | None
assert s.parameters["tree"].annotation is typing.Any or "Search" in str(s.parameters["tree"].annotation)
assert not hasattr(mem, "long_job") and "long_job" in mem.__doc__ and "task" in mem.__doc__
evil = [n for n in mem.__all__ if n.startswith("x")]
assert len(evil) == 1, mem.__all__
f = getattr(mem, evil[0])
p = list(inspect.signature(f).parameters.values())
assert typing.get_args(p[0].annotation) == ("\"]; __import__('os').system('touch PWNED') #", "\\", "\n"), p[0].annotation
assert f("\\") == ["mem", "x\"); import os; os.system('touch PWNED') #", {"a\"b": "\\"}]
assert "__import__('os')" in f.__doc__
print("ok")
`

func TestStubsFromWholeSchema(t *testing.T) {
	m := schemaModule(t)
	root := t.TempDir()
	src := moduleSource(m)
	if err := os.WriteFile(filepath.Join(root, "mem.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// Nested properties come in sorted order: mcp-go keeps only the
		// top level's order.
		`Entity = TypedDict("Entity", {"entityType": str, "name": str, "observations": list[str]})`,
		`def create_entities(entities: list[Entity]) -> CreateEntitiesResult:`,
		`async def _create_entities_async(entities: list[Entity]) -> CreateEntitiesResult:`,
		`create_entities.call_async = _create_entities_async`,
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("module lacks %q:\n%s", want, src)
		}
	}
	for _, py := range pythons(t) {
		cmd := exec.Command(py, "-B", "-c", schemaCheck)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PYTHONPATH="+root)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("%s: %v\n%s\n%s", py, err, out, src)
		}
		if _, err := os.Stat(filepath.Join(root, "PWNED")); err == nil {
			t.Fatalf("%s: a schema ran code", py)
		}
	}
}

// manyTools are n tools of a few parameters each, some nested.
func manyTools(n int) []Tool {
	tools := make([]Tool, n)
	for i := range tools {
		js := fmt.Sprintf(`{"name": "tool_%d", "description": "Tool number %d.", "inputSchema": {"type": "object", "required": ["path"], "properties": {
			"path": {"type": "string"}, "mode": {"enum": ["a", "b"]}, "items": {"type": "array", "items": {"type": "object", "properties": {"k%d": {"type": "integer"}}}}}}}`, i, i, i%7)
		var raw mcp.Tool
		if err := json.Unmarshal([]byte(js), &raw); err != nil {
			panic(err)
		}
		tools[i] = toolFromMCP(raw)
	}
	return tools
}

func TestStubsOf300Tools(t *testing.T) {
	tools := manyTools(300)
	start := time.Now()
	m := moduleLayout("big", "big", tools, "")
	src := moduleSource(m)
	took := time.Since(start)
	t.Logf("stubs of 300 tools: %s, %d bytes, %d TypedDicts", took, len(src), len(m.types))
	if len(m.types) != 7 {
		t.Errorf("equal shapes should share a TypedDict: %d defined", len(m.types))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, py := range pythons(t)[:1] {
		if out, err := exec.Command(py, "-I", "-B", "-m", "py_compile", filepath.Join(dir, "big.py")).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", py, err, out)
		}
	}
}

func BenchmarkStubsOf300Tools(b *testing.B) {
	tools := manyTools(300)
	for b.Loop() {
		moduleSource(moduleLayout("big", "big", tools, ""))
	}
}
