package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeExecRequest feeds arbitrary bodies to the execute endpoints'
// decoder: it never panics, every refusal is a 400 or 413 with a message,
// and what it accepts is a valid request whose code is valid UTF-8 within
// the code cap. Run longer with
// go test -run '^$' -fuzz FuzzDecodeExecRequest -fuzztime 10s ./server/
func FuzzDecodeExecRequest(f *testing.F) {
	for _, seed := range []string{
		`{"code":"print(1)"}`,
		`{"code":"x","backend":"wasm","session":"s1","timeout_ms":500}`,
		`{"code":"x","timeout_ms":-1}`,
		`{"code":"x","timeout_ms":1.5}`,
		`{"code":"x","timeout_ms":1e400}`,
		`{"code":null}`,
		`{}`,
		`{"Code":"x"}`,
		`{"code":"x","code":"y"}`,
		`{"code":"x"} {"code":"y"}`,
		`{"code":"x"}garbage`,
		`{"code":"x"`,
		`{"code":"\ud800"}`,
		"{\"code\":\"\xff\"}",
		`["code"]`,
		`null`,
		``,
		` `,
		`{"code":"` + string(make([]byte, 70)) + `"}`,
		`{"code":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
		`{"code":{"a":1}}`,
		`{"backend":["x"],"code":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		const maxCode = 64
		req, err := decodeExecRequest(raw, maxCode)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || (re.Status != http.StatusBadRequest && re.Status != http.StatusRequestEntityTooLarge) || err.Error() == "" {
				t.Fatalf("%q: refusal %T %v; want a 400 or 413 with a message", raw, err, err)
			}
			return
		}
		if !utf8.Valid(raw) || !utf8.ValidString(req.Code) || len(req.Code) > maxCode || req.TimeoutMs < 0 {
			t.Fatalf("%q: accepted %+v", raw, req)
		}
		// What was accepted reads the same through encoding/json.
		var loose ExecRequest
		if err := json.Unmarshal(raw, &loose); err != nil || loose != req {
			t.Fatalf("%q: strict %+v, encoding/json %+v (%v)", raw, req, loose, err)
		}
	})
}

func TestDecodeExecRequestNamesTheProblem(t *testing.T) {
	for raw, want := range map[string]string{
		`{"code":"x","cod":1}`:          `unknown field "cod"`,
		`{"Code":"x"}`:                  `unknown field "Code"`,
		`{"code":null}`:                 `field "code" must not be null`,
		`{}`:                            `field "code" is required`,
		`{"code":1}`:                    `field "code": want a string, got number`,
		`{"code":"x","timeout_ms":"5"}`: `field "timeout_ms": want a number, got string`,
		`{"code":"x","timeout_ms":-5}`:  `"timeout_ms" must not be negative`,
		`{"code":"x","code":"y"}`:       `field "code" appears twice`,
		`{"code":"x"} {}`:               `unexpected data after the JSON object`,
		`{"code":"x"}]`:                 `unexpected data after the JSON object`,
		"{\"code\":\"\xc3\"}":           `not valid UTF-8`,
		`[]`:                            `must be a JSON object, not an array`,
		`"code"`:                        `must be a JSON object, not a string`,
		``:                              `request body is empty`,
		`{"code":"x"`:                   `unexpected end`,
		`{"code":"xxxxxxxxxx"}`:         `code is 10 bytes; the limit is 8 bytes`,
	} {
		_, err := decodeExecRequest([]byte(raw), 8)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want an error containing %q", raw, err, want)
		}
	}
	req, err := decodeExecRequest([]byte(` {"code":"print(1)","backend":null,"timeout_ms":5} `+"\n"), 64)
	if err != nil || req.Code != "print(1)" || req.TimeoutMs != 5 {
		t.Fatalf("valid request: %+v %v", req, err)
	}
}
