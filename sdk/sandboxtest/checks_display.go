package sandboxtest

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// displayCode prints, displays HTML and PNG bytes (the second while the
// cell still runs), then ends with a value that has an HTML representation.
const displayCode = `import time
print("a")
display({"text/html": "<b>bold</b>"}, raw=True)
display({"image/png": b"\x89PNG\r\n\x1a\n" + bytes(100)}, raw=True)
time.sleep(1.5)
print("b")
class T:
    def _repr_html_(self):
        return "<table><tr><td>1</td></tr></table>"
    def __repr__(self):
        return "T()"
T()`

func checkDisplay(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, displayCode)
	if err != nil {
		return err
	}
	end := time.Now()
	if !out.Result.OK() {
		return fmt.Errorf("display code failed: %s %s", out.Result.Message, out.Stderr)
	}
	if out.Stdout != "a\nb\n" {
		return fmt.Errorf("stdout %q, want %q (a rich last value is displayed, not printed)", out.Stdout, "a\nb\n")
	}
	if len(out.Displays) != 3 {
		return fmt.Errorf("got %d display events, want 3", len(out.Displays))
	}
	if got := string(out.Displays[0].Data[sdk.MIMEHTML]); got != "<b>bold</b>" {
		return fmt.Errorf("display 1: text/html %q", got)
	}
	png := out.Displays[1].Data[sdk.MIMEPNG]
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) != 108 {
		return fmt.Errorf("display 2: image/png of %d bytes does not start with the PNG signature or lost bytes", len(png))
	}
	last := out.Displays[2]
	if !strings.Contains(string(last.Data[sdk.MIMEHTML]), "<table>") || last.Text() != "T()" {
		return fmt.Errorf("last expression: bundle %v, want text/html with a table and text/plain T()", last.MIMETypes())
	}
	if out.DisplayAfter[0] != 2 || out.DisplayAfter[2] != 4 {
		return fmt.Errorf("displays are out of order with stdout (after %v bytes)", out.DisplayAfter)
	}
	if s.Info.Capabilities.Streaming && end.Sub(out.DisplayAt[1]) < time.Second {
		return fmt.Errorf("the PNG arrived %s before the end: displays were not streamed", end.Sub(out.DisplayAt[1]))
	}
	return nil
}

func checkLibraries(s *Suite) error {
	libs := s.Info.Capabilities.Libraries
	if len(libs) == 0 {
		return skip("plugin declares no libraries")
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	code := fmt.Sprintf("import importlib\nfor n in %s:\n    importlib.import_module(n)\nprint('ok')", pyList(libs))
	out, err := s.Exec(bg(), id, code)
	if err != nil {
		return err
	}
	if !out.Result.OK() || out.Stdout != "ok\n" {
		return fmt.Errorf("declared libraries %v do not all import: %s %s", libs, out.Result.Message, clip(out.Stderr))
	}
	return nil
}

func pyList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = fmt.Sprintf("%q", it)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
