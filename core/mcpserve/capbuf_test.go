package mcpserve

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapBufferKeepsHeadAndTail(t *testing.T) {
	c := newCapBuffer(100)
	in := strings.Repeat("h", 50) + strings.Repeat("x", 1000) + strings.Repeat("t", 49) + "\n"
	// Written in uneven pieces, as output arrives.
	for i := 0; i < len(in); i += 7 {
		_, _ = c.Write([]byte(in[i:min(i+7, len(in))]))
	}
	got := c.String()
	if !strings.HasPrefix(got, strings.Repeat("h", 50)+"\n[... 1000 bytes elided (of 1100)") ||
		!strings.HasSuffix(got, "...]\n"+strings.Repeat("t", 49)+"\n") || c.Elided() != 1000 {
		t.Fatalf("got %q (elided %d)", got, c.Elided())
	}
	small := newCapBuffer(100)
	_, _ = small.Write([]byte("short\n"))
	if small.String() != "short\n" || small.Elided() != 0 {
		t.Fatalf("under the limit: %q", small.String())
	}
	big := newCapBuffer(100)
	_, _ = big.Write([]byte(strings.Repeat("a", 50) + strings.Repeat("b", 5000) + strings.Repeat("c", 50)))
	if got := big.String(); !strings.HasSuffix(got, strings.Repeat("c", 50)) || big.Elided() != 5000 {
		t.Fatalf("one large write: %q", got)
	}
}

func TestCapBufferCutsOnCharacters(t *testing.T) {
	c := newCapBuffer(10)
	_, _ = c.Write([]byte(strings.Repeat("é", 100)))
	got := c.String()
	if !utf8.ValidString(got) || !strings.HasPrefix(got, "éé") || !strings.HasSuffix(got, "éé") {
		t.Fatalf("got %q", got)
	}
}
