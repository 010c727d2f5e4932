package image

import (
	"bytes"
	"strings"
	"testing"
)

// The newc writer's output must be what the kernel's unpacker expects:
// 110-byte headers, names and data padded to 4 bytes, a trailer.
func TestCpioLayout(t *testing.T) {
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	c.Dir("dev")
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, []byte("abcde"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b)%4 != 0 {
		t.Fatalf("archive length %d not 4-aligned", len(b))
	}
	if !bytes.HasPrefix(b, []byte("070701")) || !bytes.Contains(b, []byte("TRAILER!!!\x00")) {
		t.Fatalf("bad archive: %q", b[:20])
	}
	i := bytes.Index(b, []byte("init\x00"))
	hdr := string(b[i-110 : i])
	if !strings.HasPrefix(hdr, "070701") || hdr[54:62] != "00000005" {
		t.Fatalf("init header %q: file size field %q", hdr, hdr[54:62])
	}
	data := i + len("init\x00")
	data += (4 - (110+len("init\x00"))%4) % 4
	if string(b[data:data+5]) != "abcde" {
		t.Fatalf("file data at %d: %q", data, b[data:data+5])
	}
}

func TestCheckPVHRejectsNonELF(t *testing.T) {
	if err := checkPVH([]byte("MZ not an elf")); err == nil {
		t.Fatal("accepted a non-ELF kernel")
	}
}
