package lexical

import (
	"strings"
	"unicode"
)

// stop words carry no meaning in a task or a docstring; dropping them keeps
// "the" from ranking every document.
var stop = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"for": true, "from": true, "in": true, "is": true, "it": true, "of": true, "on": true, "or": true,
	"the": true, "this": true, "that": true, "to": true, "with": true, "its": true, "into": true,
	"str": true, "int": true, "none": true, "return": true, "returns": true,
}

// Terms splits text into lower-case terms: words, and the parts of
// snake_case and camelCase identifiers (parseCsvRows → parse, csv, rows),
// with a plural "s" removed so "files" finds "file".
func Terms(text string) []string {
	var out []string
	var word []rune
	flush := func() {
		if len(word) == 0 {
			return
		}
		if t := normalize(string(word)); t != "" {
			out = append(out, t)
		}
		word = word[:0]
	}
	prev := rune(0)
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			// A lower→upper step starts a new part of a camelCase name.
			if unicode.IsUpper(r) && unicode.IsLower(prev) {
				flush()
			}
			word = append(word, unicode.ToLower(r))
		default:
			flush()
		}
		prev = r
	}
	flush()
	return out
}

func normalize(w string) string {
	if stop[w] {
		return ""
	}
	if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
		w = strings.TrimSuffix(w, "s")
	}
	return w
}
