package skills

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/sdk"
)

//go:embed analyze.py
var analyzeScript string

// Candidate is a successful code action offered to the registry.
type Candidate struct {
	Code    string
	Stdout  string
	Task    string
	Session string
	Step    int
	Backend string
}

type analysis struct {
	Functions []struct {
		Name string `json:"name"`
		Args []struct {
			Name       string  `json:"name"`
			Annotation *string `json:"annotation"`
		} `json:"args"`
		Returns *string `json:"returns"`
		Doc     string  `json:"doc"`
	} `json:"functions"`
	Calls []struct {
		Name     string    `json:"name"`
		ArgTypes []*string `json:"arg_types"`
	} `json:"calls"`
	Module string `json:"module"`
	// Normalized is Module without docstrings: two code actions with the
	// same one are the same skill.
	Normalized string `json:"normalized"`
	// Unresolved are, by top-level definition, the names it reads that
	// neither the module, its imports nor the builtins bind.
	Unresolved map[string][]string `json:"unresolved"`
}

// runIn executes code in a fresh session of backend and returns stdout.
func runIn(ctx context.Context, m *session.Manager, backend, code string) (string, error) {
	s, err := m.Open(ctx, session.Options{Backend: backend})
	if err != nil {
		return "", err
	}
	defer m.Close(context.WithoutCancel(ctx), s.ID)
	var out, errb strings.Builder
	res, err := m.Exec(ctx, s, code, 0, func(e sdk.Event) {
		if e.Kind == sdk.EventStdout {
			out.WriteString(string(e.Data))
		} else if e.Kind == sdk.EventStderr {
			errb.WriteString(string(e.Data))
		}
	})
	if err != nil {
		return "", err
	}
	if !res.OK() {
		return "", fmt.Errorf("%s %s", res.Message, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Consider evaluates a code action and saves it as a skill when it
// qualifies: it succeeded, printed something, defines a function, is not a
// duplicate, and its module imports in a fresh session of the same backend.
// It returns the saved skill, or nil and the reason it was not saved.
func (r *Registry) Consider(ctx context.Context, m *session.Manager, c Candidate) (*Skill, string, error) {
	if strings.TrimSpace(c.Stdout) == "" {
		return nil, "no meaningful output", nil
	}
	if !strings.Contains(c.Code, "def ") {
		return nil, "defines no function", nil
	}
	js, _ := json.Marshal(c.Code)
	script := strings.Replace(analyzeScript, "SOURCE_JSON", fmt.Sprintf("%q", string(js)), 1)
	out, err := runIn(ctx, m, c.Backend, script)
	if err != nil {
		return nil, "", fmt.Errorf("analyse code action: %w", err)
	}
	var a analysis
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &a); err != nil {
		return nil, "", fmt.Errorf("analyse code action: bad analysis %q: %w", out, err)
	}
	if len(a.Functions) == 0 {
		return nil, "defines no top-level function", nil
	}
	// The entry point: the function whose call produced the output, else the
	// last one defined.
	entry := a.Functions[len(a.Functions)-1]
	var argTypes []*string
	for i := len(a.Calls) - 1; i >= 0; i-- {
		for _, f := range a.Functions {
			if f.Name == a.Calls[i].Name {
				entry, argTypes = f, a.Calls[i].ArgTypes
				goto found
			}
		}
	}
found:
	imports, missing := r.resolve(a.Unresolved)
	if len(missing) > 0 {
		return nil, "not self-contained: " + strings.Join(missing, "; ") + " (a variable of an earlier step? define it inside the function or pass it as an argument)", nil
	}
	module := a.Module
	if len(imports) > 0 {
		module = strings.Join(imports, "\n") + "\n" + module
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(module)))
	hash := hex.EncodeToString(sum[:])
	nsum := sha256.Sum256([]byte(strings.TrimSpace(a.Normalized)))
	norm := hex.EncodeToString(nsum[:])
	all, err := r.List()
	if err != nil {
		return nil, "", err
	}
	if dup := duplicateOf(all, hash, norm); dup != "" {
		return nil, "duplicate of skill " + dup, nil
	}
	var params, names []string
	for i, arg := range entry.Args {
		t := "Any"
		if arg.Annotation != nil {
			t = *arg.Annotation
		} else if i < len(argTypes) && argTypes[i] != nil {
			t = *argTypes[i]
		}
		params = append(params, arg.Name+": "+t)
		names = append(names, arg.Name)
	}
	ret := "Any"
	if entry.Returns != nil {
		ret = *entry.Returns
	}
	signature := fmt.Sprintf("run(%s) -> %s", strings.Join(params, ", "), ret)
	desc := firstLine(entry.Doc)
	if desc == "" {
		desc = firstLine(c.Task)
	}
	name := sanitize(entry.Name)
	prev := find(all, name)
	if prev == nil {
		// A hand-written module of that name is never overwritten.
		name = r.uniqueName(name, all)
	}
	created := time.Now().UTC()
	var src strings.Builder
	fmt.Fprintf(&src, "\"\"\"%s\n\nSource task: %s\nSession: %s, step %d\nCreated: %s\nBackend: %s\n\"\"\"\n\nfrom typing import Any\n\n%s\n",
		escapeDoc(desc), escapeDoc(firstLine(c.Task)), c.Session, c.Step, created.Format(time.RFC3339), c.Backend, module)
	if entry.Name != "run" {
		fmt.Fprintf(&src, "\n\ndef %s:\n    \"\"\"Entry point: %s.\"\"\"\n    return %s(%s)\n", signature, escapeDoc(desc), entry.Name, strings.Join(names, ", "))
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("skills dir: %w", err)
	}
	// Verify: the module must import in a fresh session before it is kept.
	probe := "_verify_" + hash[:12]
	probePath := filepath.Join(r.Dir, probe+".py")
	if err := os.WriteFile(probePath, []byte(src.String()), 0o644); err != nil {
		return nil, "", fmt.Errorf("skills dir not writable: %w", err)
	}
	_, verr := runIn(ctx, m, c.Backend, fmt.Sprintf("import importlib\nimportlib.invalidate_caches()\nm = importlib.import_module('skills.%s')\nassert callable(m.run), 'run is not callable'", probe))
	os.Remove(probePath)
	if verr != nil {
		return nil, "module does not import: " + verr.Error(), nil
	}
	sk := Skill{Name: name, Signature: signature, Description: desc, File: name + ".py", Hash: hash, NormHash: norm, Version: 1,
		SourceTask: c.Task, Session: c.Session, Step: c.Step, Backend: c.Backend, Created: created}
	if err := r.save(all, prev, &sk, []byte(src.String())); err != nil {
		return nil, "", err
	}
	return &sk, "", nil
}

func (r *Registry) uniqueName(base string, all []Skill) string {
	taken := map[string]bool{"index": true}
	for _, s := range all {
		taken[s.Name] = true
	}
	if _, err := os.Stat(filepath.Join(r.Dir, base+".py")); err == nil {
		taken[base] = true
	}
	name := base
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	return name
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func escapeDoc(s string) string { return strings.ReplaceAll(s, `"""`, `'''`) }
