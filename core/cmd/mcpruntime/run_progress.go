package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mcpruntime/mcpruntime/core/agent"
)

// progress shows a run as it goes: a few lines per step on stderr, or
// NDJSON events on stdout (--json), whose last line is the result.
type progress struct {
	mu     sync.Mutex
	stdout io.Writer
	stderr io.Writer
	json   bool
	quiet  bool
	enc    *json.Encoder
}

func newProgress(stdout, stderr io.Writer, asJSON, quiet bool) *progress {
	p := &progress{stdout: stdout, stderr: stderr, json: asJSON, quiet: quiet}
	if asJSON {
		p.enc = json.NewEncoder(stdout)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

// event is agent.Options.OnEvent.
func (p *progress) event(e agent.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		_ = p.enc.Encode(e)
		return
	}
	if p.quiet {
		return
	}
	switch e.Kind {
	case agent.EventStepStarted:
		fmt.Fprintf(p.stderr, "mcpruntime: step %d: %s\n", e.Step, codeHead(e.Code, 3, 100))
	case agent.EventStepDone:
		fmt.Fprintf(p.stderr, "mcpruntime: step %d done in %.2fs: %s\n", e.Step, e.DurationMs/1000, e.Summary)
		if e.Skill != "" {
			fmt.Fprintf(p.stderr, "mcpruntime: step %d %s\n", e.Step, e.Skill)
		}
	}
}

// result prints the run's outcome: the answer on stdout, or with --json
// the result as the last event.
func (p *progress) result(res *agent.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		_ = p.enc.Encode(struct {
			Event string `json:"event"`
			*agent.Result
		}{"result", res})
		return
	}
	if res.Success {
		fmt.Fprintln(p.stdout, res.Answer)
	}
}

// codeHead is the first n non-blank lines of code, each cut to width,
// joined with " ⏎ ", and how many lines follow.
func codeHead(code string, n, width int) string {
	var lines []string
	all := strings.Split(strings.TrimSpace(code), "\n")
	for _, l := range all {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(lines) == n {
			break
		}
		if len(l) > width {
			cut := width
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut--
			}
			l = l[:cut] + "…"
		}
		lines = append(lines, l)
	}
	out := strings.Join(lines, " ⏎ ")
	if rest := len(all) - n; rest > 0 {
		out += fmt.Sprintf(" (+%d lines)", rest)
	}
	return out
}
