package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// field is one member a request object may carry: its exact name, where
// its value goes, and whether it must be present and not null.
type field struct {
	name     string
	dst      any
	required bool
}

// decodeObject decodes raw, which must be one JSON object and nothing
// else, into fields. Unlike encoding/json's defaults it refuses what a
// lenient decoder would let through: invalid UTF-8 (which encoding/json
// replaces silently), names that match a field only case-insensitively
// or not at all, a name given twice, a required member missing or null,
// and data after the object. Every refusal is a 400 naming the member.
func decodeObject(raw []byte, fields []field) error {
	if !utf8.Valid(raw) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err == io.EOF {
		return badRequest("request body is empty; send a JSON object")
	}
	if err != nil {
		return badRequest("request body is not JSON: %s", jsonMessage(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return badRequest("request body must be a JSON object, not %s", describe(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badRequest("request body is not JSON: %s", jsonMessage(err))
		}
		name, _ := tok.(string)
		f := lookup(fields, name)
		if f == nil {
			return badRequest("unknown field %q (the fields are %s)", name, names(fields))
		}
		if seen[name] {
			return badRequest("field %q appears twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return badRequest("field %q: %s", name, jsonMessage(err))
		}
		if string(v) == "null" {
			if f.required {
				return badRequest("field %q must not be null", name)
			}
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return badRequest("field %q: %s", name, jsonMessage(err))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return badRequest("request body is not JSON: %s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("unexpected data after the JSON object (at byte %d)", dec.InputOffset())
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			return badRequest("field %q is required", f.name)
		}
	}
	return nil
}

func lookup(fields []field, name string) *field {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

func names(fields []field) string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return strings.Join(out, ", ")
}

// describe names a JSON token's kind for messages.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return string(t)
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// jsonMessage words encoding/json's errors without Go type names.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		want := te.Type.Kind().String()
		switch want {
		case "int", "int64", "int32", "uint", "uint64", "float64":
			want = "number"
		case "slice", "array":
			want = "array"
		case "map", "struct":
			want = "object"
		case "bool":
			want = "boolean"
		}
		return fmt.Sprintf("want a %s, got %s", want, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of the body"
	}
	return err.Error()
}
