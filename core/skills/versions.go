package skills

import (
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

// versionsDir holds the earlier versions of skills; a dot directory, so
// they are not importable as skills.<name> by accident.
const versionsDir = ".versions"

// Version is an earlier version of a skill, kept in skills/.versions.
type Version struct {
	Version   int       `json:"version"`
	File      string    `json:"file"`
	Signature string    `json:"signature"`
	Hash      string    `json:"hash"`
	NormHash  string    `json:"norm_hash,omitempty"`
	Created   time.Time `json:"created"`
}

func find(all []Skill, name string) *Skill {
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return nil
}

// duplicateOf names the skill (or earlier version) whose module is the
// same as one with hash, or the same once docstrings and formatting are
// set aside (norm); "" if none.
func duplicateOf(all []Skill, hash, norm string) string {
	for _, s := range all {
		if s.Hash == hash || (s.NormHash != "" && s.NormHash == norm) {
			return s.Name
		}
		for _, v := range s.Previous {
			if v.Hash == hash || (v.NormHash != "" && v.NormHash == norm) {
				return fmt.Sprintf("%s (version %d)", s.Name, v.Version)
			}
		}
	}
	return ""
}

// save writes sk's module and index entry. A skill of the same name
// (prev) becomes an earlier version: its module moves to .versions and
// sk, one version up, takes its place, so `from skills.NAME import run`
// gives the latest.
func (r *Registry) save(all []Skill, prev, sk *Skill, src []byte) error {
	path := filepath.Join(r.Dir, sk.File)
	var archived string
	if prev != nil {
		sk.Version = prev.Version + 1
		if prev.Version == 0 {
			sk.Version = 2 // an entry from before versions were kept
		}
		old := Version{Version: sk.Version - 1, Signature: prev.Signature, Hash: prev.Hash, NormHash: prev.NormHash, Created: prev.Created,
			File: filepath.ToSlash(filepath.Join(versionsDir, fmt.Sprintf("%s_v%d.py", prev.Name, sk.Version-1)))}
		if err := os.MkdirAll(filepath.Join(r.Dir, versionsDir), 0o755); err != nil {
			return fmt.Errorf("skills versions dir: %w", err)
		}
		archived = filepath.Join(r.Dir, old.File)
		if err := os.Rename(filepath.Join(r.Dir, prev.File), archived); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keep version %d of skill %s: %w", old.Version, prev.Name, err)
		}
		sk.Previous = append(append([]Version(nil), prev.Previous...), old)
	}
	if err := atomicfile.WriteBytes(path, src, 0o644); err != nil {
		return err
	}
	out := make([]Skill, 0, len(all)+1)
	for _, s := range all {
		if s.Name != sk.Name {
			out = append(out, s)
		}
	}
	if err := r.write(append(out, *sk)); err != nil {
		// Put things back as they were: the index still names prev.
		os.Remove(path)
		if archived != "" {
			_ = os.Rename(archived, filepath.Join(r.Dir, prev.File))
		}
		return err
	}
	return nil
}

// resolve binds the names code reads but does not define (by top-level
// definition) to skills: a name that is a skill whose module defines a
// function of that name is imported from it. It returns those imports,
// and a description of each name left unbound.
func (r *Registry) resolve(unresolved map[string][]string) (imports, missing []string) {
	all, _ := r.List()
	byDef := map[string][]string{}
	seen := map[string]bool{}
	for def, names := range unresolved {
		for _, n := range names {
			if s := find(all, n); s != nil && r.defines(s, n) {
				if !seen[n] {
					seen[n] = true
					imports = append(imports, fmt.Sprintf("from skills.%s import %s", n, n))
				}
				continue
			}
			byDef[def] = append(byDef[def], n)
		}
	}
	defs := make([]string, 0, len(byDef))
	for d := range byDef {
		defs = append(defs, d)
	}
	sort.Strings(defs)
	sort.Strings(imports)
	for _, d := range defs {
		who := d
		if d == "<module>" {
			who = "the module"
		}
		missing = append(missing, fmt.Sprintf("%s reads %s, which nothing in the code, its imports or the builtins defines", who, strings.Join(byDef[d], ", ")))
	}
	return imports, missing
}

// defines reports whether skill s's module has a top-level function name.
func (r *Registry) defines(s *Skill, name string) bool {
	b, err := os.ReadFile(filepath.Join(r.Dir, s.File))
	if err != nil {
		return false
	}
	return regexp.MustCompile(`(?m)^(async )?def ` + regexp.QuoteMeta(name) + `\(`).Match(b)
}
