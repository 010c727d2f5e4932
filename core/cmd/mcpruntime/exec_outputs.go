package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// outputFiles writes the rich outputs of an execution (exec --outputs DIR)
// as files: output-N.EXT, one per representation other than text/plain.
type outputFiles struct {
	dir string
	n   int
}

// write saves d's representations and returns their paths, richest first.
func (o *outputFiles) write(d *sdk.Display) ([]string, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("outputs dir: %w", err)
	}
	o.n++
	var paths []string
	for _, mime := range d.MIMETypes() {
		if mime == sdk.MIMEText {
			continue
		}
		path := filepath.Join(o.dir, fmt.Sprintf("output-%d.%s", o.n, sdk.FileExt(mime)))
		if err := os.WriteFile(path, d.Data[mime], 0o644); err != nil {
			return paths, fmt.Errorf("write output: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// printDisplay shows a rich output on a terminal: its text, then one line
// per other representation (the file it was saved to, or its size).
func printDisplay(w io.Writer, d *sdk.Display, paths []string) {
	if t := d.Text(); t != "" {
		fmt.Fprintln(w, strings.TrimSuffix(t, "\n"))
	}
	if len(paths) > 0 {
		for _, p := range paths {
			fmt.Fprintf(w, "[output: %s]\n", p)
		}
		return
	}
	for _, mime := range d.MIMETypes() {
		if mime != sdk.MIMEText {
			fmt.Fprintf(w, "[%s, %d bytes: --outputs DIR saves it]\n", mime, len(d.Data[mime]))
		}
	}
}
