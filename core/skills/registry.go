// Package skills turns working code actions into typed, importable modules
// (skills/<name>.py with a run(...) entry point), keeps their index, and
// lists them for the agent's prompt.
package skills

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/core/internal/atomicfile"
)

// Skill is one entry of skills/index.json.
type Skill struct {
	Name        string `json:"name"`
	Signature   string `json:"signature"`
	Description string `json:"description"`
	File        string `json:"file"`
	Hash        string `json:"hash"`
	// NormHash identifies the module without docstrings and formatting:
	// a code action with the same one is a duplicate.
	NormHash string `json:"norm_hash,omitempty"`
	// Version counts the skills saved under this name (from 1); the
	// module File is the latest, Previous the ones it replaced.
	Version    int       `json:"version,omitempty"`
	Previous   []Version `json:"previous,omitempty"`
	SourceTask string    `json:"source_task,omitempty"`
	Session    string    `json:"session,omitempty"`
	Step       int       `json:"step,omitempty"`
	Backend    string    `json:"backend,omitempty"`
	Created    time.Time `json:"created"`
}

// Listing is how a skill appears in the prompt.
func (s Skill) Listing() string {
	return fmt.Sprintf("%s%s — %s", s.Name, strings.TrimPrefix(s.Signature, "run"), s.Description)
}

// Registry is a skills directory.
type Registry struct {
	Dir string
}

type index struct {
	Skills []Skill `json:"skills"`
}

// ErrNotFound means no skill has that name.
var ErrNotFound = errors.New("no such skill")

// List returns the skills in the index, by name.
func (r *Registry) List() ([]Skill, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("skills index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("skills index %s is corrupt (%v); remove it to start over", filepath.Join(r.Dir, "index.json"), err)
	}
	sort.Slice(idx.Skills, func(i, j int) bool { return idx.Skills[i].Name < idx.Skills[j].Name })
	return idx.Skills, nil
}

// Get returns one skill and its source.
func (r *Registry) Get(name string) (*Skill, string, error) {
	all, err := r.List()
	if err != nil {
		return nil, "", err
	}
	for _, s := range all {
		if s.Name == name {
			src, err := os.ReadFile(filepath.Join(r.Dir, s.File))
			if err != nil {
				return &s, "", fmt.Errorf("skill %s: %w", name, err)
			}
			return &s, string(src), nil
		}
	}
	return nil, "", fmt.Errorf("%w: %s", ErrNotFound, name)
}

// Remove deletes a skill, its module and its earlier versions.
func (r *Registry) Remove(name string) error {
	all, err := r.List()
	if err != nil {
		return err
	}
	out := all[:0]
	var gone *Skill
	for _, s := range all {
		if s.Name == name {
			s := s
			gone = &s
			continue
		}
		out = append(out, s)
	}
	if gone == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err := r.write(out); err != nil {
		return err
	}
	for _, f := range append([]string{gone.File}, versionFiles(gone)...) {
		if err := os.Remove(filepath.Join(r.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func versionFiles(s *Skill) []string {
	var out []string
	for _, v := range s.Previous {
		out = append(out, v.File)
	}
	return out
}

// write replaces the index atomically.
func (r *Registry) write(all []Skill) error {
	b, err := json.MarshalIndent(index{Skills: all}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(r.Dir, "index.json"), b, 0o644)
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// sanitize makes a Python module name.
func sanitize(name string) string {
	n := notIdent.ReplaceAllString(strings.ToLower(name), "_")
	n = strings.Trim(n, "_")
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "skill_" + n
	}
	return n
}
