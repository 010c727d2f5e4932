package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// previewChars is how much of an input the model sees.
const previewChars = 400

// Input is a large input a run works on without the model reading it: the
// session gets it as the variable `context` (a str, or a dict of path →
// text for a directory), and the prompt only describes it (the Recursive
// Language Model pattern: the context lives in the REPL, not the prompt).
type Input struct {
	// Value is a string or a map[string]string.
	Value any
	// Source names where it came from (a path, or "stdin").
	Source string
	// Skipped lists files of a directory that were not text.
	Skipped []string
}

// ErrInputTooLarge is returned for an input over the limit.
var ErrInputTooLarge = errors.New("run input too large")

// LoadInput reads path ("-" reads stdin): a file becomes a str, a
// directory a dict of its text files by relative path (binary files are
// skipped and named in the description). limit ≤ 0 means
// config.DefaultInputLimit.
func LoadInput(path string, stdin io.Reader, limit int64) (*Input, error) {
	if limit <= 0 {
		limit = config.DefaultInputLimit
	}
	if path == "-" {
		b, err := readLimited(stdin, limit, "stdin")
		if err != nil {
			return nil, err
		}
		return &Input{Value: toText(b), Source: "stdin"}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("run input: %w", err)
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("run input: %w", err)
		}
		defer f.Close()
		b, err := readLimited(f, limit, path)
		if err != nil {
			return nil, err
		}
		return &Input{Value: toText(b), Source: path}, nil
	}
	return loadDir(path, limit)
}

func loadDir(root string, limit int64) (*Input, error) {
	files := map[string]string{}
	in := &Input{Value: files, Source: root}
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			in.Skipped = append(in.Skipped, filepath.ToSlash(rel))
			return nil
		}
		if total += int64(len(b)); total > limit {
			return fmt.Errorf("%w: %s holds more than %d bytes of text", ErrInputTooLarge, root, limit)
		}
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("run input: %w", err)
	}
	return in, nil
}

func readLimited(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("run input %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInputTooLarge, name, limit)
	}
	return b, nil
}

// toText keeps valid UTF-8 as is and replaces what is not.
func toText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Describe is what the model is told about the input: its type, size and a
// short preview, and how to work on it.
func (in *Input) Describe(maxDepth int) string {
	var b strings.Builder
	switch v := in.Value.(type) {
	case string:
		fmt.Fprintf(&b, "The input of this task is in the variable `context` of your session: a str of %d characters, %d lines. It is NOT in this conversation; this is its beginning:\n```\n%s\n```\n",
			utf8.RuneCountInString(v), strings.Count(v, "\n")+1, preview(v))
	case map[string]string:
		names := make([]string, 0, len(v))
		total := 0
		for n, s := range v {
			names = append(names, n)
			total += len(s)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "The input of this task is in the variable `context` of your session: a dict of %d files (path → text, %d bytes in all). It is NOT in this conversation. Its files", len(v), total)
		if len(names) > 20 {
			fmt.Fprintf(&b, " (the first 20 of %d)", len(names))
			names = names[:20]
		}
		b.WriteString(": ")
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%d bytes)", n, len(v[n]))
		}
		b.WriteString(".\n")
		if len(in.Skipped) > 0 {
			fmt.Fprintf(&b, "%d binary files were left out.\n", len(in.Skipped))
		}
	}
	b.WriteString("Work on it with code (len, slices, str methods, re) and print only what you need to see. " +
		"For what needs reading, give pieces to a model: ask_llm(question, context=piece) answers from that piece alone")
	if maxDepth > 0 {
		fmt.Fprintf(&b, "; ask_llm(question, context=piece, recursive=True) hands the piece to a sub-agent with its own sandbox, where it is `context` again (at most %d levels deep)", maxDepth)
	}
	b.WriteString(". Combine the answers in code.")
	return b.String()
}

func preview(s string) string {
	r := []rune(s)
	if len(r) <= previewChars {
		return s
	}
	return string(r[:previewChars]) + "…"
}

// JSON is the input as the sandbox receives it.
func (in *Input) JSON() (json.RawMessage, error) {
	b, err := json.Marshal(in.Value)
	if err != nil {
		return nil, fmt.Errorf("encode run input: %w", err)
	}
	return b, nil
}

// Inputs holds the inputs of the sessions runs use, until the session's
// set-up cell takes its own.
type Inputs struct {
	mu sync.Mutex
	m  map[string]*Input
}

// Put gives session its input.
func (s *Inputs) Put(session string, in *Input) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*Input{}
	}
	s.m[session] = in
}

// Get returns session's input.
func (s *Inputs) Get(session string) (*Input, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.m[session]
	return in, ok
}

// Drop forgets session's input.
func (s *Inputs) Drop(session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, session)
}

// inputCell loads the input into the session as `context`, through the
// runtime's built-in "input" helper (no file in the workspace, nothing in
// the prompt).
const inputCell = `import mcpruntime as _mcpruntime_helper
context = _mcpruntime_helper.call_tool("mcpruntime", "input", {})
del _mcpruntime_helper
print(f"context: {type(context).__name__} of {len(context)} {'characters' if isinstance(context, str) else 'files'}")
`

// loadInput puts opts.Input into the session before the first step; the
// cell is the runtime's own, so it is neither a step nor shown to the
// model.
func (r *runner) loadInput(ctx context.Context) error {
	in := r.opts.Input
	if in == nil {
		return nil
	}
	if r.opts.Inputs == nil {
		return errors.New("run input: this process cannot hand inputs to sessions")
	}
	id := r.sb.ID()
	r.opts.Inputs.Put(id, in)
	defer r.opts.Inputs.Drop(id)
	var errb strings.Builder
	res, err := r.sb.Exec(ctx, inputCell, 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStderr {
			errb.Write(e.Data)
		}
	})
	if err != nil {
		return fmt.Errorf("run input: load into session %s: %w", id, err)
	}
	if !res.OK() {
		return fmt.Errorf("run input: load into session %s: %s %s", id, res.Message, strings.TrimSpace(errb.String()))
	}
	r.inputNote = "\n\n" + in.Describe(r.opts.MaxDepth)
	return nil
}
