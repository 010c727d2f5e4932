package sdk

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDisplayJSONRoundTrip(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\xff")
	d := Display{Data: map[string][]byte{MIMEPNG: png, MIMEHTML: []byte("<table></table>"), MIMEText: []byte("t")}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the CLI's --json does
	if err := enc.Encode(d); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if !strings.Contains(string(b), `"text/html":"<table></table>"`) || !strings.Contains(string(b), `"image/png":"iVBORw0KGgoA/w=="`) {
		t.Fatalf("JSON %s: text types as text, binary types base64", b)
	}
	var back Display
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Data[MIMEPNG], png) || back.Text() != "t" {
		t.Fatalf("round trip: %v", back.Data)
	}
	if got := strings.Join(d.MIMETypes(), ","); got != "image/png,text/html,text/plain" {
		t.Fatalf("richest first: %s", got)
	}
	if err := json.Unmarshal([]byte(`{"data":{"image/png":"not base64!"}}`), &back); err == nil {
		t.Fatal("a binary type that is not base64 must be refused")
	}
}

func TestFileExt(t *testing.T) {
	for mime, want := range map[string]string{MIMEPNG: "png", MIMEHTML: "html", "image/webp": "webp", "application/x-evil/../../x": "bin", "application/vnd.a+json": "bin"} {
		if got := FileExt(mime); got != want {
			t.Errorf("FileExt(%q) = %q, want %q", mime, got, want)
		}
	}
}
