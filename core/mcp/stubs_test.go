package mcp

import (
	"github.com/mcpruntime/mcpruntime/core/catalog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/config"
)

// pythons returns one working interpreter per CPython version 3.11+ found on
// PATH or under pyenv, so the stubs are checked on every version at hand.
func pythons(t *testing.T) []string {
	t.Helper()
	candidates := []string{"python3", "python3.11", "python3.12", "python3.13", "python3.14"}
	if home, err := os.UserHomeDir(); err == nil {
		found, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", "3.*", "bin", "python3"))
		candidates = append(candidates, found...)
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		v, err := exec.Command(p, "-c", "import sys; assert sys.version_info >= (3, 11); print('%d.%d' % sys.version_info[:2])").Output()
		if err != nil || seen[string(v)] {
			continue
		}
		seen[string(v)] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Skip("no python 3.11+ found")
	}
	t.Logf("checking with %v", out)
	return out
}

// importCheck imports the generated package next to a stand-in for the
// kernel's mcpruntime helper that records calls, and checks signatures and
// the arguments each stub passes.
const importCheck = `
import inspect, sys, types, json
calls = []
fake = types.ModuleType("mcpruntime")
def call_tool(server, tool, arguments=None, **kw):
    calls.append([server, tool, arguments])
    return "ok"
fake.call_tool = call_tool
async def call_tool_async(server, tool, arguments=None, **kw):
    calls.append(["async", server, tool, arguments])
    return "ok"
fake.call_tool_async = call_tool_async
sys.modules["mcpruntime"] = fake

import tools
from tools.calc import add, echo
import tools.calc as calc
assert tools.calc is calc and tools.__all__ == ["calc"], tools.__all__
assert str(inspect.signature(add)) == "(a: int, b: int) -> str | list[typing.Any]", inspect.signature(add)
assert str(inspect.signature(echo)) == "(text: str, shout: bool | None = False) -> str | list[typing.Any]", inspect.signature(echo)
assert str(inspect.signature(calc.stats)) == "(numbers: list[float]) -> tools.calc.StatsResult", inspect.signature(calc.stats)
assert calc.StatsResult.__required_keys__ == {"count", "sum"}, calc.StatsResult.__required_keys__
assert inspect.signature(add.call_async) == inspect.signature(add)
assert add.__doc__.startswith("Add two integers.") and "first addend" in add.__doc__
assert '"""' in calc.odd_name_v2.__doc__ and "\\ backslashes" in calc.odd_name_v2.__doc__
add(2, b=3)
echo("hi")
echo("hi", shout=False)
calc.odd_name_v2("x", _call_2="y")
calc.fail()
import asyncio
async def both():
    return await asyncio.gather(add.call_async(1, 2), echo.call_async("x"))
assert asyncio.run(both()) == ["ok", "ok"]
print(json.dumps(calls))
`

func TestStubsCompileAndImport(t *testing.T) {
	h := startHub(t, []config.MCPServer{calc(nil)})
	root := t.TempDir()
	dir := filepath.Join(root, "tools")
	// A stale module from an earlier run is removed.
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "gone.py"), []byte("raise SystemExit"), 0o644)
	if err := h.WriteStubs(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone.py")); !os.IsNotExist(err) {
		t.Fatalf("stale module kept: %v", err)
	}
	want := `[["calc", "add", {"a": 2, "b": 3}], ["calc", "echo", {"text": "hi", "shout": false}], ["calc", "echo", {"text": "hi", "shout": false}], ["calc", "odd-name.v2", {"from": "x", "_call": "y"}], ["calc", "fail", {}], ["async", "calc", "add", {"a": 1, "b": 2}], ["async", "calc", "echo", {"text": "x", "shout": false}]]`
	for _, py := range pythons(t) {
		out, err := exec.Command(py, "-I", "-B", "-m", "py_compile", filepath.Join(dir, "__init__.py"), filepath.Join(dir, "calc.py")).CombinedOutput()
		if err != nil {
			t.Fatalf("%s py_compile: %v\n%s", py, err, out)
		}
		cmd := exec.Command(py, "-B", "-c", importCheck)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PYTHONPATH="+root)
		out, err = cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s import: %v\n%s", py, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Fatalf("%s calls:\n got %s\nwant %s", py, got, want)
		}
	}
}

func TestStubsWithoutServers(t *testing.T) {
	var h *Hub
	dir := filepath.Join(t.TempDir(), "tools")
	if err := h.WriteStubs(dir); err != nil {
		t.Fatal(err)
	}
	for _, py := range pythons(t) {
		cmd := exec.Command(py, "-B", "-c", "import tools; assert tools.__all__ == []")
		cmd.Dir = filepath.Dir(dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", py, err, out)
		}
	}
	if l, err := catalog.New(nil, h).Prompt("", 0); err != nil || l != "" {
		t.Fatalf("nil hub listing = %q, %v", l, err)
	}
}

func TestListing(t *testing.T) {
	h := startHub(t, []config.MCPServer{calc(nil)})
	l, err := catalog.New(nil, h).Prompt("", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"from tools.calc import add",
		"- tools.calc.add(a: int, b: int) — Add two integers.\n",
		"- tools.calc.echo(text: str, shout: bool = False) — Echo text back.\n",
		"- tools.calc.stats(numbers: list[float]) -> StatsResult — Count and sum numbers.\n",
		"- tools.calc.odd_name_v2(from_: str, arg_2nd_value: str = None, _call_2: str = None, anything: Any = None)",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("listing lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, "second paragraph") {
		t.Errorf("listing has the description's second paragraph:\n%s", l)
	}
}

func TestIdentifier(t *testing.T) {
	for in, want := range map[string]string{
		"read_file": "read_file", "read-file": "read_file", "class": "class_", "2d": "x_2d", "": "x_", "é": "x__", "None": "None_",
	} {
		if got := identifier(in, "x_"); got != want {
			t.Errorf("identifier(%q) = %q, want %q", in, got, want)
		}
	}
	n := newNamer("_call")
	if a, b, c := n.name("a-b", "x"), n.name("a_b", "x"), n.name("_call", "x"); a != "a_b" || b != "a_b_2" || c != "_call_2" {
		t.Errorf("namer: %s %s %s", a, b, c)
	}
}
