package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
)

// serverBlock mirrors `server { ... }` as written.
type serverBlock struct {
	Listen         *string        `hcl:"listen,optional"`
	Token          hcl.Expression `hcl:"token,optional"`
	Hosts          hcl.Expression `hcl:"hosts,optional"`
	AllowedOrigins hcl.Expression `hcl:"allowed_origins,optional"`
	MaxBody        hcl.Expression `hcl:"max_body,optional"`
	MaxCode        hcl.Expression `hcl:"max_code,optional"`
	MaxConnections *int           `hcl:"max_connections,optional"`
	HeaderTimeout  hcl.Expression `hcl:"header_timeout,optional"`
	Range          hcl.Range      `hcl:",def_range"`
}

// Server configures `mcpruntime serve` over TCP (and the limits of the
// session daemon's socket). Zero limits mean the server's defaults.
type Server struct {
	Listen string
	// Token, when set, is required as `Authorization: Bearer TOKEN`;
	// loading refuses one shorter than MinTokenLength or with whitespace.
	Token string
	// Hosts are further names clients address the server by ("name" on
	// any port or "name:port"): other Host headers are refused.
	Hosts []string
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed
	// to call the server; any other cross-origin request is refused.
	AllowedOrigins []string
	// MaxBody caps a request body, MaxCode the code of one execution.
	MaxBody, MaxCode int64
	// MaxConnections caps the connections served at once.
	MaxConnections int
	// HeaderTimeout is how long a client may take to send its headers.
	HeaderTimeout time.Duration
}

// MinTokenLength is the shortest server.token accepted.
const MinTokenLength = 16

func buildServer(ctx *hcl.EvalContext, b *serverBlock, diags *hcl.Diagnostics) Server {
	s := Server{Listen: "127.0.0.1:7878"}
	if b == nil {
		return s
	}
	s.Listen = str(b.Listen, s.Listen)
	s.Token = serverToken(ctx, b.Token, diags)
	s.Hosts = stringList(ctx, b.Hosts, "hosts", checkHostEntry, diags)
	s.AllowedOrigins = stringList(ctx, b.AllowedOrigins, "allowed_origins", checkOriginEntry, diags)
	s.MaxBody = positiveSize(ctx, b.MaxBody, "max_body", diags)
	s.MaxCode = positiveSize(ctx, b.MaxCode, "max_code", diags)
	s.HeaderTimeout = duration(ctx, b.HeaderTimeout, 0, diags)
	if b.MaxConnections != nil {
		if *b.MaxConnections < 1 {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid max_connections",
				Detail: "server.max_connections must be at least 1.", Subject: b.Range.Ptr()})
		}
		s.MaxConnections = *b.MaxConnections
	}
	return s
}

// serverToken evaluates server.token: empty (or unset) means none; a
// blank one, one with whitespace or control characters (which a header
// cannot carry intact) or a short one is refused.
func serverToken(ctx *hcl.EvalContext, expr hcl.Expression, diags *hcl.Diagnostics) string {
	v, d := expr.Value(ctx)
	*diags = append(*diags, d...)
	if d.HasErrors() || v.IsNull() {
		return ""
	}
	bad := func(detail string) string {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server token",
			Detail: detail, Subject: expr.Range().Ptr()})
		return ""
	}
	if v.Type() != cty.String || !v.IsKnown() {
		return bad("server.token must be a string, such as env(\"MCPRUNTIME_TOKEN\").")
	}
	tok := v.AsString()
	switch {
	case tok == "":
		return ""
	case strings.TrimSpace(tok) == "":
		return bad("server.token is blank; leave it unset for no token, or use a random one (openssl rand -hex 32).")
	case strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("server.token contains whitespace or control characters.")
	case len(tok) < MinTokenLength:
		return bad(fmt.Sprintf("server.token has %d characters; it needs at least %d (openssl rand -hex 32 makes one).", len(tok), MinTokenLength))
	}
	return tok
}

// stringList evaluates a list of strings, checking each entry.
func stringList(ctx *hcl.EvalContext, expr hcl.Expression, name string, check func(string) error, diags *hcl.Diagnostics) []string {
	v, d := expr.Value(ctx)
	if d.HasErrors() || v.IsNull() {
		*diags = append(*diags, d...)
		return nil
	}
	var out []string
	if d := gohcl.DecodeExpression(expr, ctx, &out); d.HasErrors() {
		*diags = append(*diags, d...)
		return nil
	}
	for _, e := range out {
		if err := check(e); err != nil {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server." + name + " entry",
				Detail: fmt.Sprintf("%q: %v.", e, err), Subject: expr.Range().Ptr()})
		}
	}
	return out
}

// checkHostEntry accepts "name" or "name:port" (IPv6 in brackets).
func checkHostEntry(h string) error {
	if h == "" || strings.ContainsAny(h, "/@?#\\ ") {
		return fmt.Errorf("want a host name, optionally with :port (no scheme or path)")
	}
	if strings.Contains(h, ":") && !(strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]")) {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return err
		}
	}
	return nil
}

// checkOriginEntry accepts scheme://host[:port] for http and https.
func checkOriginEntry(o string) error {
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("want an origin such as \"https://app.example\" or \"http://localhost:3000\" (no wildcards or paths)")
	}
	return nil
}

// positiveSize is an optional size that must be above zero when written.
func positiveSize(ctx *hcl.EvalContext, expr hcl.Expression, name string, diags *hcl.Diagnostics) int64 {
	before := len(*diags)
	n := size(ctx, expr, 0, diags)
	if len(*diags) > before {
		return 0
	}
	if n < 0 || (n == 0 && !nullExpr(ctx, expr)) {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server." + name,
			Detail: "The size must be above zero.", Subject: expr.Range().Ptr()})
	}
	return n
}

func nullExpr(ctx *hcl.EvalContext, expr hcl.Expression) bool {
	v, d := expr.Value(ctx)
	return d.HasErrors() || v.IsNull()
}
