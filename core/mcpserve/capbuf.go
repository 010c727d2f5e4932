package mcpserve

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// capBuffer keeps at most limit bytes of a stream: its first half and its
// last half, counting what falls between. Results and tracebacks come at
// the end of an output, so keeping only the head would lose them; memory
// stays bounded whatever the cell prints.
type capBuffer struct {
	mu   sync.Mutex
	half int
	head []byte
	// tail is a ring of the last half bytes once head is full; start is
	// its oldest byte.
	tail    []byte
	start   int
	elided  int64
	written int64
}

func newCapBuffer(limit int) *capBuffer {
	h := max(limit/2, 1)
	return &capBuffer{half: h}
}

// Write appends p; it never fails.
func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	c.written += int64(n)
	if room := c.half - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		if len(c.tail) < c.half {
			k := min(c.half-len(c.tail), len(p))
			c.tail = append(c.tail, p[:k]...)
			p = p[k:]
			continue
		}
		// Full ring: overwrite the oldest bytes, which are elided.
		if len(p) >= c.half {
			c.elided += int64(c.half)
			c.elided += int64(len(p) - c.half)
			copy(c.tail, p[len(p)-c.half:])
			c.start = 0
			break
		}
		k := min(c.half-c.start, len(p))
		copy(c.tail[c.start:], p[:k])
		c.elided += int64(k)
		c.start = (c.start + k) % c.half
		p = p[k:]
	}
	return n, nil
}

// Elided is how many bytes were left out.
func (c *capBuffer) Elided() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.elided
}

// String is the head, a marker naming the size of the elided middle,
// and the tail; cuts fall on UTF-8 character boundaries.
func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := append(append([]byte(nil), c.tail[c.start:]...), c.tail[:c.start]...)
	if c.elided == 0 {
		return string(c.head) + string(tail)
	}
	head := trimPartialRune(c.head)
	elided := c.elided + int64(len(c.head)-len(head))
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail, elided = tail[1:], elided+1
	}
	return fmt.Sprintf("%s\n[... %d bytes elided (of %d); the server's output limit keeps the head and the tail ...]\n%s",
		head, elided, c.written, tail)
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			return b
		}
	}
	return b
}
