package server

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Guard admits only requests that a web page in the user's browser cannot
// have sent: the Host header must name this server (DNS rebinding sends
// an attacker's name), a browser's Origin must be the server's own or an
// allowed one, Sec-Fetch-Site must not say cross-site, and request bodies
// must be JSON (a page can send text/plain or a form cross-origin without
// asking, never application/json). It is plain middleware (Wrap), so
// every endpoint of a listener shares it.
type Guard struct {
	// socket: the unix-socket daemon. No browser reaches it, so any sign
	// of one (an Origin, Sec-Fetch-Site other than same-origin or none)
	// is refused, and there is no Host to check.
	socket bool
	// port is the listener's port; a Host must carry it (or omit it when
	// it is 80).
	port string
	// anyIP: the listener takes every address, so an IP literal Host with
	// the port passes (DNS rebinding needs a name).
	anyIP bool
	// local are the listener's own names, accepted with its port; names
	// (configured without a port) with any port; namePorts as written.
	local, names, namePorts map[string]bool
	// origins are the allowed cross origins, normalized (see parseOrigin).
	origins map[string]bool
}

// NewSocketGuard returns the guard of the unix-socket daemon.
func NewSocketGuard() *Guard { return &Guard{socket: true} }

// NewGuard returns the guard of a TCP server listening on addr (host:port,
// the listener's actual address). hosts are further names clients use for
// it (server.hosts: "name" with any port, or "name:port"); origins are
// browser origins allowed to call it (server.allowed_origins, such as
// "https://app.example"). A loopback listener also answers to localhost,
// 127.0.0.1 and [::1] on its port.
func NewGuard(addr string, hosts, origins []string) (*Guard, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("guard: listen address %q: %w", addr, err)
	}
	g := &Guard{port: port, local: map[string]bool{}, names: map[string]bool{}, namePorts: map[string]bool{}, origins: map[string]bool{}}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		switch {
		case ip.IsUnspecified():
			g.anyIP = true
			g.addLoopback()
		case ip.IsLoopback():
			g.addLoopback()
		}
		g.local[ip.String()] = true
	} else {
		g.local[normalHost(host)] = true
		if normalHost(host) == "localhost" {
			g.addLoopback()
		}
	}
	for _, h := range hosts {
		name, p, err := splitHost(h)
		switch {
		case err != nil:
			return nil, fmt.Errorf("guard: server.hosts entry %q: %w", h, err)
		case p == "":
			g.names[name] = true
		default:
			g.namePorts[net.JoinHostPort(name, p)] = true
		}
	}
	for _, o := range origins {
		n, err := parseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("guard: server.allowed_origins entry %q: %w", o, err)
		}
		g.origins[n] = true
	}
	return g, nil
}

func (g *Guard) addLoopback() {
	for _, n := range []string{"localhost", "127.0.0.1", "::1"} {
		g.local[n] = true
	}
}

// Wrap returns next behind the guard: refused requests get a JSON error
// (403, or 415 for a body that is not JSON) and never reach next. A
// request from an allowed origin gets CORS headers naming it, and its
// preflight is answered here (before authentication, which browsers do
// not send with a preflight); no other origin ever gets CORS headers.
func (g *Guard) Wrap(next http.Handler, logger hclog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowed, err := g.check(r)
		if err != nil {
			logger.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
			writeError(w, statusFor(err), err)
			return
		}
		if allowed != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", allowed)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Check returns why r is refused (a *RequestError carrying the status),
// or nil.
func (g *Guard) Check(r *http.Request) error {
	_, err := g.check(r)
	return err
}

// check returns the request's Origin when it is one of the allowed cross
// origins, or why the request is refused.
func (g *Guard) check(r *http.Request) (string, error) {
	allowed, err := g.checkBrowser(r)
	if err != nil {
		return "", &RequestError{Status: http.StatusForbidden, Err: err}
	}
	if err := checkJSONBody(r); err != nil {
		return "", &RequestError{Status: http.StatusUnsupportedMediaType, Err: err}
	}
	return allowed, nil
}

// checkBrowser applies the Host, Origin and Sec-Fetch-Site rules; it
// returns the Origin header when it is an allowed cross origin.
func (g *Guard) checkBrowser(r *http.Request) (string, error) {
	origin, hasOrigin := r.Header["Origin"]
	site := strings.ToLower(r.Header.Get("Sec-Fetch-Site"))
	if g.socket {
		if hasOrigin {
			return "", fmt.Errorf("refused: a request with an Origin (%q) reached the daemon's socket, which serves no browser", strings.Join(origin, ", "))
		}
		if site != "" && site != "same-origin" && site != "none" {
			return "", fmt.Errorf("refused: a browser's %s request (Sec-Fetch-Site) reached the daemon's socket", site)
		}
		return "", nil
	}
	if err := g.checkHost(r.Host); err != nil {
		return "", err
	}
	allowed := false
	if hasOrigin {
		if len(origin) != 1 {
			return "", errors.New("refused: more than one Origin header")
		}
		o, err := parseOrigin(origin[0])
		if err != nil {
			return "", fmt.Errorf("refused: cross-origin request from Origin %q: %w", origin[0], err)
		}
		allowed = g.origins[o]
		if !allowed && !g.sameOrigin(o, r.Host) {
			return "", fmt.Errorf("refused: cross-origin request from %s; list it in server.allowed_origins to allow it", o)
		}
	}
	if site != "" && site != "same-origin" && site != "none" && !allowed {
		return "", fmt.Errorf("refused: a browser's %s request (Sec-Fetch-Site) without an allowed Origin", site)
	}
	if allowed {
		return origin[0], nil
	}
	return "", nil
}

// checkHost accepts the listener's address with its port (and its
// loopback equivalents), an IP literal with the port when listening on
// every address, and the configured names.
func (g *Guard) checkHost(hostport string) error {
	name, port, err := splitHost(hostport)
	if err == nil {
		if port == "" {
			port = "80"
		}
		_, notIP := netip.ParseAddr(name)
		if g.names[name] || g.namePorts[net.JoinHostPort(name, port)] ||
			(port == g.port && (g.local[name] || (g.anyIP && notIP == nil))) {
			return nil
		}
	}
	return fmt.Errorf("refused: the Host header %q is not this server's address (port %s); list the name in server.hosts to allow it", hostport, g.port)
}

// sameOrigin reports whether origin (normalized) is the server's own
// origin as the client addressed it: plain http and the request's Host.
func (g *Guard) sameOrigin(origin, hostport string) bool {
	name, port, err := splitHost(hostport)
	if err != nil {
		return false
	}
	if port == "" {
		port = "80"
	}
	return origin == "http://"+net.JoinHostPort(name, port)
}

// checkJSONBody refuses a body that is not declared JSON: POST, PUT and
// PATCH must say Content-Type: application/json (parameters such as
// charset=utf-8 allowed).
func checkJSONBody(r *http.Request) error {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("refused: the body must be sent as Content-Type: application/json, not %q", ct)
	}
	return nil
}

// splitHost splits a Host header or server.hosts entry into a
// normalized name (lower case, no trailing dot, IPv6 without brackets)
// and its port, empty when absent.
func splitHost(hostport string) (name, port string, err error) {
	if hostport == "" {
		return "", "", errors.New("empty host")
	}
	if strings.ContainsAny(hostport, "/@?#\\ ") {
		return "", "", errors.New("not a host name (no scheme, path or spaces)")
	}
	name = hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if _, perr := strconv.ParseUint(p, 10, 16); perr != nil {
			return "", "", fmt.Errorf("bad port %q", p)
		}
		name, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		name = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return "", "", err
	}
	name = normalHost(name)
	if name == "" {
		return "", "", errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		name = ip.Unmap().String()
	}
	return name, port, nil
}

func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// parseOrigin normalizes a browser origin to scheme://host:port with the
// default port written out; "null" (an opaque origin) and anything with a
// path, query or credentials are refused.
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", fmt.Errorf("not an origin: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an http(s) origin (scheme://host[:port])")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("an origin is scheme://host[:port], without path, query or credentials")
	}
	name, port, err := splitHost(u.Host)
	if err != nil {
		return "", err
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(name, port), nil
}
