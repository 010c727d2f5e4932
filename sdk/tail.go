package sdk

import (
	"strings"
	"sync"
)

// TailWriter keeps the last Max bytes written to it: the end of a process's
// stderr, for error messages about processes that die (a plugin before its
// handshake, a kernel before it is ready).
type TailWriter struct {
	// Max is how many bytes to keep (default 4096).
	Max int

	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer; it never fails.
func (t *TailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	max := t.Max
	if max <= 0 {
		max = 4096
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-max:]...)
	}
	return len(p), nil
}

// String is what was kept, trimmed of surrounding white space.
func (t *TailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// Suffix is "; LABEL: TEXT" to append to an error message, or "" when
// nothing was written.
func (t *TailWriter) Suffix(label string) string {
	s := t.String()
	if s == "" {
		return ""
	}
	return "; " + label + ": " + s
}
