package sdk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Display is a rich output of sandbox code: one object in several
// representations (Jupyter's mime bundle), e.g. a DataFrame as text/html and
// text/plain, a plot as image/png. Data holds raw bytes for binary types and
// UTF-8 text for the others; in JSON, binary types are base64 strings and the
// others plain strings, as in Jupyter's notebook format.
type Display struct {
	Data map[string][]byte
}

// MIME types the runtime knows by name.
const (
	MIMEText     = "text/plain"
	MIMEHTML     = "text/html"
	MIMEMarkdown = "text/markdown"
	MIMEJSON     = "application/json"
	MIMEPNG      = "image/png"
	MIMEJPEG     = "image/jpeg"
	MIMESVG      = "image/svg+xml"
)

// IsTextMIME reports whether a MIME type's content is text (so JSON carries it
// as a string) rather than bytes (carried as base64).
func IsTextMIME(mime string) bool {
	switch {
	case strings.HasPrefix(mime, "text/"),
		mime == MIMEJSON, mime == MIMESVG, mime == "application/javascript",
		strings.HasSuffix(mime, "+json"), strings.HasSuffix(mime, "+xml"):
		return true
	}
	return false
}

// Text is the bundle's text/plain representation ("" if it has none).
func (d *Display) Text() string { return string(d.Data[MIMEText]) }

// Size is the number of bytes the bundle carries.
func (d *Display) Size() int {
	n := 0
	for _, v := range d.Data {
		n += len(v)
	}
	return n
}

// MIMETypes lists the bundle's types, richest first: images, then HTML,
// Markdown, JSON, other types by name, text/plain last.
func (d *Display) MIMETypes() []string {
	out := make([]string, 0, len(d.Data))
	for k := range d.Data {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int {
		if ra, rb := mimeRank(a), mimeRank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return out
}

func mimeRank(mime string) int {
	switch {
	case strings.HasPrefix(mime, "image/"):
		return 0
	case mime == MIMEHTML:
		return 1
	case mime == MIMEMarkdown:
		return 2
	case mime == MIMEJSON:
		return 3
	case mime == MIMEText:
		return 5
	}
	return 4
}

// Images are the bundle's binary image types, richest first.
func (d *Display) Images() []string {
	var out []string
	for _, m := range d.MIMETypes() {
		if strings.HasPrefix(m, "image/") && !IsTextMIME(m) {
			out = append(out, m)
		}
	}
	return out
}

// Summary is a one-line description for surfaces that show text only:
// the text/plain representation when it is short, else the types and sizes.
func (d *Display) Summary() string {
	var parts []string
	for _, m := range d.MIMETypes() {
		if m != MIMEText {
			parts = append(parts, fmt.Sprintf("%s, %d bytes", m, len(d.Data[m])))
		}
	}
	return "[display: " + strings.Join(parts, "; ") + "]"
}

// FileExt is the file name extension for a MIME type's content ("png",
// "html", ...; "bin" when nothing better is known).
func FileExt(mime string) string {
	switch mime {
	case MIMEPNG:
		return "png"
	case MIMEJPEG:
		return "jpg"
	case MIMESVG:
		return "svg"
	case MIMEHTML:
		return "html"
	case MIMEMarkdown:
		return "md"
	case MIMEJSON:
		return "json"
	case MIMEText:
		return "txt"
	case "text/latex":
		return "tex"
	}
	if _, sub, ok := strings.Cut(mime, "/"); ok && sub != "" && !strings.ContainsAny(sub, "+./\\ ") && len(sub) <= 16 {
		return sub
	}
	return "bin"
}

type displayJSON struct {
	Data map[string]string `json:"data"`
}

// MarshalJSON writes {"data": {mime: string}}, binary types base64.
func (d Display) MarshalJSON() ([]byte, error) {
	out := displayJSON{Data: make(map[string]string, len(d.Data))}
	for k, v := range d.Data {
		if IsTextMIME(k) {
			out.Data[k] = string(v)
		} else {
			out.Data[k] = base64.StdEncoding.EncodeToString(v)
		}
	}
	// HTML stays readable (<table>, not \u003ctable\u003e); an encoder that
	// escapes HTML still escapes it when it writes this value.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Display) UnmarshalJSON(b []byte) error {
	var in displayJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	data, err := DecodeBundle(in.Data)
	if err != nil {
		return err
	}
	d.Data = data
	return nil
}

// DecodeBundle turns a JSON mime bundle (binary types base64) into Data.
func DecodeBundle(in map[string]string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(in))
	for k, v := range in {
		if IsTextMIME(k) {
			out[k] = []byte(v)
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("display %s: not base64: %w", k, err)
		}
		out[k] = raw
	}
	return out, nil
}
