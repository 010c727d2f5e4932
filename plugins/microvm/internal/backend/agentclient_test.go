package backend

import (
	"bufio"
	"strings"
	"testing"
)

// scanFor finds the sync echo after any prefix, including ones that
// repeat the start of what it looks for (a naive restart misses those).
func TestScanFor(t *testing.T) {
	want := "\x00\x00\x00\x07ab\x00\x00\x00\x07abc"
	for _, prefix := range []string{"", "junk", "\x00\x00\x00\x00\x00\x07ab", want[:len(want)-1], "\x00\x00\x00\x07ab\x00\x00\x00\x07ab"} {
		r := bufio.NewReader(strings.NewReader(prefix + want + "rest"))
		if err := scanFor(r, []byte(want), 1<<20); err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		if rest, _ := r.ReadString(0); rest != "rest" {
			t.Fatalf("prefix %q: read on from %q, want the bytes after the match", prefix, rest)
		}
	}
	if err := scanFor(bufio.NewReader(strings.NewReader("nothing here")), []byte(want), 1<<20); err == nil {
		t.Fatal("found what is not there")
	}
	if err := scanFor(bufio.NewReader(strings.NewReader(strings.Repeat("x", 100)+want)), []byte(want), 50); err == nil {
		t.Fatal("read past the limit")
	}
}
