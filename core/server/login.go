package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
)

// LoginPath and LogoutPath set and clear the console's login cookie.
const (
	LoginPath  = "/v1/login"
	LogoutPath = "/v1/logout"
	// CookieName is the console's login cookie: HttpOnly (page scripts
	// never see it), SameSite=Strict (no other site's page makes the
	// browser send it) and worth what the bearer token is worth.
	CookieName = "mcpruntime_session"
)

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	Token string `json:"token"`
}

// LoginResponse answers POST /v1/login and POST /v1/logout.
type LoginResponse struct {
	OK bool `json:"ok"`
	// TokenRequired says whether the server has a token at all (on
	// loopback without one, the console needs no login).
	TokenRequired bool `json:"token_required"`
}

// cookieValue is what the login cookie carries for token: a digest, so
// the token itself is never stored in the browser's cookie jar.
func cookieValue(token string) string {
	sum := sha256.Sum256([]byte("mcpruntime console cookie\x00" + token))
	return hex.EncodeToString(sum[:])
}

// authenticate returns next behind the token check: a request needs
// `Authorization: Bearer TOKEN` or the console's login cookie, except the
// public ones (console files, login, the OpenAPI document). The cookie is
// only ever sent same-site (SameSite=Strict) and the Guard has already
// refused cross-origin requests, so it cannot be ridden by another page.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.token == "" {
		return next
	}
	bearer := RequireToken(s.token, next)
	want := cookieValue(s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.public(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") == "" {
			if c, err := r.Cookie(CookieName); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		bearer.ServeHTTP(w, r)
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if err := s.decodeBody(w, r, []field{{name: "token", dst: &req.Token, required: true}}); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	if s.token == "" {
		writeJSON(w, http.StatusOK, LoginResponse{OK: true})
		return
	}
	got, want := sha256.Sum256([]byte(req.Token)), sha256.Sum256([]byte(s.token))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		writeError(w, http.StatusUnauthorized, errors.New("wrong token (the server.token of runtime.hcl)"))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: cookieValue(s.token), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, LoginResponse{OK: true, TokenRequired: true})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.decodeBody(w, r, nil); err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, LoginResponse{OK: true, TokenRequired: s.token != ""})
}

// whoami answers GET /v1/login: whether the request is authenticated
// (it got here) and whether the server needs a token.
func (s *Server) whoami(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, LoginResponse{OK: true, TokenRequired: s.token != ""})
}
