package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/sdk"
)

const (
	pngSignature = "\x89PNG\r\n\x1a\n"
	plotCode     = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
	// pngBytesCode displays PNG bytes without matplotlib (every backend).
	pngBytesCode = `display({"image/png": b"\x89PNG\r\n\x1a\n" + bytes(64)}, raw=True)`
)

// TestRichOutputs runs a plot (where the backend has matplotlib) or PNG
// bytes through every surface: exec --json, SSE, an MCP client; and a
// DataFrame's HTML where the backend has pandas.
func TestRichOutputs(t *testing.T) {
	cases := []struct {
		backend string
		code    string
		pandas  bool
	}{
		{"opensandbox", plotCode, true},
		{"microvm", plotCode, false},
		{"hostpython", pngBytesCode, false},
	}
	for _, tc := range cases {
		t.Run(tc.backend, func(t *testing.T) {
			plugins := needBackend(t, tc.backend)
			addr := freeAddr(t)
			dir := project(t, "")
			hcl := fmt.Sprintf("runtime {\n  backend = %q\n  plugin_dir = %q\n  daemon_idle_timeout = \"2m\"\n}\nserver {\n  listen = %q\n  token = %q\n}\n",
				tc.backend, plugins, addr, mcpToken)
			if err := os.WriteFile(filepath.Join(dir, "runtime.hcl"), []byte(hcl), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Run("exec_json", func(t *testing.T) { checkExecJSONImage(t, dir, tc.code) })
			t.Run("exec_outputs_dir", func(t *testing.T) { checkExecOutputsDir(t, dir, tc.code) })
			if tc.pandas {
				t.Run("dataframe_html", func(t *testing.T) { checkDataFrameHTML(t, dir) })
			}
			if tc.code == plotCode {
				t.Run("font_list_from_image", func(t *testing.T) { checkFontListFromImage(t, dir) })
			}
			t.Run("mcp_image", func(t *testing.T) { checkMCPImage(t, dir, tc.code) })
			startServe(t, dir, addr)
			t.Run("sse", func(t *testing.T) { checkSSEImage(t, addr, tc.code) })
		})
	}
}

// checkFontListFromImage: a new session's first import of matplotlib
// takes the font list built into the image, instead of scanning every
// font (matplotlib logs when it builds one).
func checkFontListFromImage(t *testing.T, dir string) {
	code := `import io, logging
buf = io.StringIO()
log = logging.getLogger("matplotlib")
log.addHandler(logging.StreamHandler(buf))
log.setLevel(logging.INFO)
import matplotlib.pyplot
print("built" if "generated new fontManager" in buf.getvalue() else "from the image")`
	r := cli(t, dir, "", "exec", "-c", code)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "from the image" {
		t.Fatalf("matplotlib's font list in a new session: %+v", r)
	}
}

func checkExecJSONImage(t *testing.T, dir, code string) {
	r := cli(t, dir, "", "exec", "--json", "-c", code)
	var out struct {
		Outputs []sdk.Display
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("exec --json: %v %+v", err, r)
	}
	if len(out.Outputs) != 1 || !bytes.HasPrefix(out.Outputs[0].Data[sdk.MIMEPNG], []byte(pngSignature)) {
		t.Fatalf("want one image/png output starting with the PNG signature, got %d outputs: %s", len(out.Outputs), clipText(r.stdout))
	}
}

func checkExecOutputsDir(t *testing.T, dir, code string) {
	outs := filepath.Join(t.TempDir(), "outs")
	r := cli(t, dir, "", "exec", "--outputs", outs, "-c", code)
	path := filepath.Join(outs, "output-1.png")
	if r.code != 0 || !strings.Contains(r.stdout, "[output: "+path+"]") {
		t.Fatalf("exec --outputs: %+v", r)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte(pngSignature)) {
		t.Fatalf("%s: %v (%d bytes)", path, err, len(b))
	}
}

func checkDataFrameHTML(t *testing.T, dir string) {
	r := cli(t, dir, "", "exec", "--json", "-c", "import pandas as pd\npd.DataFrame({'a': [1, 2]})")
	var out struct {
		Stdout  string
		Outputs []sdk.Display
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("exec --json: %v %+v", err, r)
	}
	if len(out.Outputs) != 1 || !strings.Contains(string(out.Outputs[0].Data[sdk.MIMEHTML]), "<table") ||
		!strings.Contains(out.Outputs[0].Text(), "a") {
		t.Fatalf("a DataFrame must give text/html with a table and text/plain: %s", clipText(r.stdout))
	}
}

func checkMCPImage(t *testing.T, dir, code string) {
	c, ctx, _ := mcpSession(t, dir, "--local")
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "execute_python", map[string]any{"code": code}
	res, err := c.CallTool(ctx, req)
	if err != nil || res.IsError {
		t.Fatalf("execute_python: %v %+v", err, res)
	}
	for _, content := range res.Content {
		if img, ok := mcpgo.AsImageContent(content); ok {
			raw, err := base64.StdEncoding.DecodeString(img.Data)
			if err != nil || img.MIMEType != sdk.MIMEPNG || !bytes.HasPrefix(raw, []byte(pngSignature)) {
				t.Fatalf("image content: %v %s %q", err, img.MIMEType, raw[:min(8, len(raw))])
			}
			return
		}
	}
	t.Fatalf("no image content in %+v", res.Content)
}

func checkSSEImage(t *testing.T, addr, code string) {
	body, _ := json.Marshal(map[string]any{"code": code})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/execute", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+mcpToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var order []string
	var png []byte
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			order = append(order, ev)
			continue
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && len(order) > 0 && order[len(order)-1] == "display" {
			var e struct{ Display *sdk.Display }
			if err := json.Unmarshal([]byte(data), &e); err != nil || e.Display == nil {
				t.Fatalf("display event: %v %q", err, clipText(data))
			}
			png = e.Display.Data[sdk.MIMEPNG]
		}
	}
	d, r := slices.Index(order, "display"), slices.Index(order, "result")
	if d < 0 || r < 0 || d > r {
		t.Fatalf("SSE events %v: want a display before the result", order)
	}
	if !bytes.HasPrefix(png, []byte(pngSignature)) {
		t.Fatalf("the SSE display carries %q, not a PNG", png[:min(8, len(png))])
	}
}

func clipText(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}
