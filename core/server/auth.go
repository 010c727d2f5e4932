package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Challenge is the WWW-Authenticate header of a 401.
const Challenge = `Bearer realm="mcpruntime"`

// RequireToken returns next behind bearer authentication: requests
// without `Authorization: Bearer TOKEN` (the scheme in any case) get 401
// with a Bearer challenge. The comparison takes the same time whatever the
// offered token, its length included (both sides are hashed first).
func RequireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", Challenge)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token (Authorization: Bearer TOKEN, the server.token)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken extracts the credentials of `Bearer TOKEN` (RFC 6750; the
// scheme is case-insensitive, RFC 7235).
func bearerToken(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimLeft(cred, " ")
	return cred, cred != ""
}
