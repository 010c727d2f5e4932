package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
	"github.com/mcpruntime/mcpruntime/sdk"
)

var plotPNG = []byte("\x89PNG\r\n\x1a\nthe plot")

// plotSandbox is a sandbox whose every execution shows one plot.
type plotSandbox struct{}

func (plotSandbox) ID() string      { return "s-plot" }
func (plotSandbox) Backend() string { return "fake" }
func (plotSandbox) Exec(_ context.Context, _ string, _ time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	emit(sdk.Event{Kind: sdk.EventDisplay, Display: &sdk.Display{Data: map[string][]byte{
		sdk.MIMEPNG: plotPNG, sdk.MIMEText: []byte("<Figure size 640x480 with 1 Axes>")}}})
	return &sdk.ExecResult{}, nil
}

// runPlot runs one step that plots, against a real HTTP model, and returns
// the request the model got after the step.
func runPlot(t *testing.T, vision bool) (llmtest.Message, *Result) {
	srv := llmtest.New(llmtest.Reply{Content: "```python\nplt.show()\n```"}, llmtest.Reply{Content: "A rising line."})
	defer srv.Close()
	model := &llm.Client{BaseURL: srv.BaseURL(), Model: "m"}
	dir := t.TempDir()
	res, err := RunIn(context.Background(), plotSandbox{}, model, "plot it", Options{Vision: vision, OutputsDir: dir})
	if err != nil || !res.Success {
		t.Fatalf("run: %v %+v", err, res)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	msgs := reqs[1].Messages
	return msgs[len(msgs)-1], res
}

func TestVisionModelGetsThePlotAsAnImagePart(t *testing.T) {
	obs, res := runPlot(t, true)
	if len(obs.Images) != 1 || !strings.HasPrefix(obs.Images[0], "data:image/png;base64,") {
		t.Fatalf("observation images %v", obs.Images)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(obs.Images[0], "data:image/png;base64,"))
	if err != nil || !bytes.Equal(raw, plotPNG) {
		t.Fatalf("the image part is not the plot: %v %q", err, raw)
	}
	if !strings.Contains(obs.Content, "output 1 (image/png, text/plain): <Figure size 640x480 with 1 Axes> [the image is attached]") {
		t.Fatalf("observation text %q", obs.Content)
	}
	if out := res.Steps[0].Outputs; len(out) != 1 || out[0].File == "" {
		t.Fatalf("step outputs %+v", out)
	}
}

func TestTextModelGetsALineWithTheFile(t *testing.T) {
	obs, res := runPlot(t, false)
	if len(obs.Images) != 0 {
		t.Fatalf("a model without vision got %d images", len(obs.Images))
	}
	file := res.Steps[0].Outputs[0].File
	if filepath.Ext(file) != ".png" || !strings.Contains(obs.Content, "saved as "+file) {
		t.Fatalf("observation %q, file %q", obs.Content, file)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, plotPNG) {
		t.Fatalf("saved plot: %v", err)
	}
}
