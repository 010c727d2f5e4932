package agent

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// observation is what the model sees of a step.
func observation(step *Step, numbered bool, limit int) string {
	var b strings.Builder
	if numbered {
		fmt.Fprintf(&b, "Block %d:\n", step.N)
	}
	b.WriteString("Observation:\n")
	if step.Stdout != "" {
		b.WriteString("stdout:\n" + clip(step.Stdout, limit) + "\n")
	}
	if step.Stderr != "" {
		b.WriteString("stderr:\n" + clip(step.Stderr, limit) + "\n")
	}
	describeOutputs(&b, step, len(step.images) > 0)
	switch {
	case step.Error != "":
		b.WriteString("error: " + step.Error + "\n")
	case step.Result != nil && !step.Result.OK():
		fmt.Fprintf(&b, "error (exit %d): %s\n", step.Result.ExitCode, step.Result.Message)
	case step.Stdout == "" && step.Stderr == "" && len(step.Outputs) == 0:
		b.WriteString("(no output)\n")
	}
	if step.Result != nil && step.Result.StateLost {
		b.WriteString("note: the session was restarted before this block ran; variables defined earlier are gone (workspace files are kept)\n")
	}
	return b.String()
}

// clip keeps at most about n bytes of s: its head and its tail, where a
// result or a traceback is, with the elided middle marked. The cuts fall
// on line boundaries when one is near, and never inside a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 2 {
		n = 2
	}
	headEnd := n / 3
	tailStart := len(s) - (n - headEnd)
	// Prefer whole lines: cut after the last newline of the head's window
	// and after the first newline of the tail's, if within a quarter of
	// each window.
	if i := strings.LastIndexByte(s[:headEnd], '\n'); i >= 0 && headEnd-i < n/12+1 {
		headEnd = i + 1
	}
	if i := strings.IndexByte(s[tailStart:], '\n'); i >= 0 && i < (n-n/3)/4 && tailStart+i+1 < len(s) {
		tailStart += i + 1
	}
	for headEnd > 0 && !utf8.RuneStart(s[headEnd]) {
		headEnd--
	}
	for tailStart < len(s) && !utf8.RuneStart(s[tailStart]) {
		tailStart++
	}
	head, tail := s[:headEnd], s[tailStart:]
	sep := "\n"
	if strings.HasSuffix(head, "\n") || head == "" {
		sep = ""
	}
	return fmt.Sprintf("%s%s[... %d bytes elided ...]\n%s", head, sep, tailStart-headEnd, tail)
}

// summary is a one-line account of a step for progress output: its
// outcome, its size and the last line it printed.
func summary(step *Step) string {
	status := "ok"
	switch {
	case step.Error != "":
		status = "error: " + firstLine(step.Error, 120)
	case step.Result != nil && !step.Result.OK():
		status = fmt.Sprintf("error (exit %d): %s", step.Result.ExitCode, firstLine(step.Result.Message, 120))
	}
	out := step.Stdout + step.Stderr
	if n := len(step.Outputs); n > 0 {
		status += fmt.Sprintf(", %d rich output(s) (%s)", n, step.Outputs[0].MIMETypes[0])
	}
	if out == "" {
		if len(step.Outputs) > 0 {
			return status
		}
		return status + ", no output"
	}
	return fmt.Sprintf("%s, %d bytes of output, last line: %s", status, len(out), lastLine(out, 120))
}

func firstLine(s string, max int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return shorten(s, max)
}

func lastLine(s string, max int) string {
	s = strings.TrimRight(s, "\n ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return shorten(s, max)
}

func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
