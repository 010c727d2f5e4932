package server

import (
	"errors"
	"net/http"

	"github.com/mcpruntime/mcpruntime/core/skills"
)

// SkillView is a skill with its source, as GET /v1/skills lists it.
type SkillView struct {
	skills.Skill
	Source string `json:"source"`
	Error  string `json:"error,omitempty"`
}

// WithSkills serves the skill registry: GET /v1/skills (each with its
// typed signature and source) and DELETE /v1/skills/{name} (the skill,
// its module and earlier versions, as `skills rm`).
func WithSkills(reg *skills.Registry) Option {
	return func(s *Server) {
		s.Handle("GET /v1/skills", func(w http.ResponseWriter, _ *http.Request) {
			all, err := reg.List()
			if err != nil {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			out := make([]SkillView, 0, len(all))
			for _, sk := range all {
				v := SkillView{Skill: sk}
				if _, src, err := reg.Get(sk.Name); err != nil {
					v.Error = err.Error()
				} else {
					v.Source = src
				}
				out = append(out, v)
			}
			writeJSON(w, http.StatusOK, out)
		})
		s.Handle("DELETE /v1/skills/{name}", func(w http.ResponseWriter, r *http.Request) {
			if err := reg.Remove(r.PathValue("name")); err != nil {
				code := http.StatusInternalServerError
				if errors.Is(err, skills.ErrNotFound) {
					code = http.StatusNotFound
				}
				writeError(w, code, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
}
