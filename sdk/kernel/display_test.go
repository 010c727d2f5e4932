package kernel

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// pngPrefix is the start of a PNG file: enough for a display to carry.
const pngPrefix = "\x89PNG\r\n\x1a\n"

func TestDisplayRichLastExpression(t *testing.T) {
	l := startPython(t)
	res, c := run(t, l, `
class Table:
    def _repr_html_(self):
        return "<table><tr><td>1</td></tr></table>"
    def __repr__(self):
        return "Table(1)"
print("before")
Table()`, sdk.Limits{}, nil)
	if !res.OK() {
		t.Fatalf("result %+v", res)
	}
	if len(c.displays) != 1 {
		t.Fatalf("want one display, got %d (stdout %q)", len(c.displays), c.stdout.String())
	}
	d := c.displays[0]
	if !strings.Contains(string(d.Data[sdk.MIMEHTML]), "<table>") || d.Text() != "Table(1)" {
		t.Fatalf("bundle %v", d.Data)
	}
	if c.stdout.String() != "before\n" {
		t.Fatalf("the rich value's repr must not also be printed: stdout %q", c.stdout.String())
	}
	if c.order[0] != sdk.EventStdout || c.order[1] != sdk.EventDisplay {
		t.Fatalf("what was printed first must arrive first: %v", c.order)
	}
	// A plain value is printed as before.
	_, c = run(t, l, "6*7", sdk.Limits{}, nil)
	if c.stdout.String() != "42\n" || len(c.displays) != 0 {
		t.Fatalf("plain value: stdout %q displays %d", c.stdout.String(), len(c.displays))
	}
}

func TestDisplayFunctionAndShims(t *testing.T) {
	l := startPython(t)
	res, c := run(t, l, `
import mcpruntime
png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
display(mcpruntime.HTML("<b>hi</b>"))
display({"image/png": png}, raw=True)
display(mcpruntime.Image(png, "image/png"))
from IPython.display import display as d2, Markdown, Image
d2(Markdown("# title"), Image(data=png, format="png"))
display(int)  # a class: its repr, not an unbound _repr_
`, sdk.Limits{}, nil)
	if !res.OK() {
		t.Fatalf("result %+v %s", res, c.stderr.String())
	}
	if len(c.displays) != 6 {
		t.Fatalf("want 6 displays, got %d: %s", len(c.displays), c.stderr.String())
	}
	if string(c.displays[0].Data[sdk.MIMEHTML]) != "<b>hi</b>" {
		t.Fatalf("HTML: %v", c.displays[0].Data)
	}
	for _, i := range []int{1, 2, 4} {
		png := c.displays[i].Data[sdk.MIMEPNG]
		if !bytes.HasPrefix(png, []byte(pngPrefix)) || len(png) != 8+256 {
			t.Fatalf("display %d: png of %d bytes: %q", i, len(png), png[:min(len(png), 16)])
		}
	}
	if string(c.displays[3].Data[sdk.MIMEMarkdown]) != "# title" {
		t.Fatalf("Markdown: %v", c.displays[3].Data)
	}
	if c.displays[5].Text() != "<class 'int'>" || len(c.displays[5].Data) != 1 {
		t.Fatalf("class: %v", c.displays[5].Data)
	}
}

func TestDisplayOverOutputLimitIsANote(t *testing.T) {
	l := startPython(t)
	res, c := run(t, l, `display({"image/png": b"\x89PNG" + bytes(5000)}, raw=True)
print("after")`, sdk.Limits{OutputBytes: 1000}, nil)
	if !res.OutputTruncated {
		t.Fatalf("a display over the limit must mark the output truncated: %+v", res)
	}
	if len(c.displays) != 1 || c.displays[0].Data[sdk.MIMEPNG] != nil ||
		!strings.Contains(c.displays[0].Text(), "omitted: over the output limit") {
		t.Fatalf("want a note instead of the image, got %+v", c.displays)
	}
	if c.stdout.String() != "after\n" {
		t.Fatalf("stdout %q", c.stdout.String())
	}
}

// The kernel runs sandbox code, which can write display frames itself: the
// host caps them again.
func TestDisplayCapIsEnforcedByTheHost(t *testing.T) {
	l := startPython(t)
	res, c := run(t, l, `
import base64, gc
kernel = next(o for o in gc.get_objects() if type(o).__name__ == "Kernel")
kernel.budget.left = 1 << 30  # sandbox code lifts its own cap
kernel.channel.send({"type": "display", "id": kernel.exec_id,
                     "bundle": {"image/png": base64.b64encode(bytes(50000)).decode()}})
`, sdk.Limits{OutputBytes: 2000}, nil)
	if !res.OutputTruncated {
		t.Fatalf("want output_truncated: %+v %s", res, c.stderr.String())
	}
	for _, d := range c.displays {
		if d.Size() > 2000 {
			t.Fatalf("a display of %d bytes passed a 2000-byte cap", d.Size())
		}
	}
}

// Where IPython is not installed, a stand-in serves Jupyter-style imports.
func TestDisplayIPythonStandIn(t *testing.T) {
	l := startPython(t)
	res, c := run(t, l, `
import sys, importlib.util
shim = next(f for f in sys.meta_path if type(f).__name__ == "_IPythonShim")
spec = shim.find_spec("IPython.display")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod.display(mod.HTML("<i>x</i>"), mod.Image(data=b"\x89PNG\r\n\x1a\n", format="png"))
`, sdk.Limits{}, nil)
	if !res.OK() || len(c.displays) != 2 {
		t.Fatalf("result %+v, %d displays: %s", res, len(c.displays), c.stderr.String())
	}
	if string(c.displays[0].Data[sdk.MIMEHTML]) != "<i>x</i>" || !bytes.HasPrefix(c.displays[1].Data[sdk.MIMEPNG], []byte(pngPrefix)) {
		t.Fatalf("bundles %v %v", c.displays[0].Data, c.displays[1].Data)
	}
}
