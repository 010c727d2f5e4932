package main

import "strings"

// lastLine is the last non-empty line of s: the result of `run --json`,
// after its events.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
