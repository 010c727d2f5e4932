package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// Output is a rich output of a step (a plot, a table), as the run keeps it.
type Output struct {
	MIMETypes []string `json:"mime_types"`
	Text      string   `json:"text,omitempty"`
	// File is where its richest representation was saved
	// (Options.OutputsDir), for the model's description and for people.
	File string `json:"file,omitempty"`
	Size int    `json:"size"`
}

// addOutput records d as an output of step: saved as a file when the run
// has an outputs directory, and kept as an image for the model when it
// takes images (Options.Vision).
func (r *runner) addOutput(step *Step, d *sdk.Display) {
	o := Output{MIMETypes: d.MIMETypes(), Text: d.Text(), Size: d.Size()}
	rich := o.MIMETypes[0]
	if dir := r.opts.OutputsDir; dir != "" && rich != sdk.MIMEText {
		name := fmt.Sprintf("step-%d-%d.%s", step.N, len(step.Outputs)+1, sdk.FileExt(rich))
		path := filepath.Join(dir, name)
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = os.WriteFile(path, d.Data[rich], 0o644)
		}
		if err != nil {
			r.opts.Logger.Warn("could not save a rich output", "path", path, "error", err)
		} else {
			o.File = path
		}
	}
	if imgs := d.Images(); r.opts.Vision && len(imgs) > 0 {
		step.images = append(step.images, llm.Image{MIME: imgs[0], Data: d.Data[imgs[0]]})
	}
	step.Outputs = append(step.Outputs, o)
}

// describeOutputs is the observation's account of a step's rich outputs:
// a line each, saying where an image is (or that it is attached).
func describeOutputs(b *strings.Builder, step *Step, vision bool) {
	for i, o := range step.Outputs {
		fmt.Fprintf(b, "output %d (%s)", i+1, strings.Join(o.MIMETypes, ", "))
		if o.Text != "" {
			fmt.Fprintf(b, ": %s", firstLine(o.Text, 200))
		}
		switch {
		case vision && strings.HasPrefix(o.MIMETypes[0], "image/") && o.MIMETypes[0] != sdk.MIMESVG:
			b.WriteString(" [the image is attached]")
		case o.File != "":
			fmt.Fprintf(b, " [%d bytes, saved as %s]", o.Size, o.File)
		}
		b.WriteString("\n")
	}
}

// stepImages are the images steps hold for the model.
func stepImages(steps []*Step) []llm.Image {
	var out []llm.Image
	for _, st := range steps {
		out = append(out, st.images...)
		st.images = nil // sent once
	}
	return out
}
