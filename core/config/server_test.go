package config

import (
	"strings"
	"testing"
	"time"
)

func TestServerBlock(t *testing.T) {
	t.Setenv("UNSET_TOKEN_FOR_TEST", "")
	c, err := parse(t, `
server {
  listen          = "0.0.0.0:9000"
  token           = "0123456789abcdef"
  hosts           = ["api.example", "proxy.example:8443"]
  allowed_origins = ["https://app.example"]
  max_body        = "2MiB"
  max_code        = "256KiB"
  max_connections = 8
  header_timeout  = "3s"
}
`)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.Listen != "0.0.0.0:9000" || s.Token != "0123456789abcdef" || len(s.Hosts) != 2 || s.AllowedOrigins[0] != "https://app.example" ||
		s.MaxBody != 2<<20 || s.MaxCode != 256<<10 || s.MaxConnections != 8 || s.HeaderTimeout != 3*time.Second {
		t.Fatalf("server %+v", s)
	}
	// An unset variable means no token, as before.
	c, err = parse(t, "server {\n  token = env(\"UNSET_TOKEN_FOR_TEST\")\n}\n")
	if err != nil || c.Server.Token != "" {
		t.Fatalf("unset token: %+v %v", c, err)
	}
}

func TestServerBlockErrors(t *testing.T) {
	for src, want := range map[string]string{
		"server {\n  token = \" \"\n}\n":                               "runtime.hcl:2:11: Invalid server token",
		"server {\n  token = \"short\"\n}\n":                           "runtime.hcl:2:11: Invalid server token",
		"server {\n  token = \"0123456789 abcdef\"\n}\n":               "contains whitespace",
		"server {\n  token = 12345678901234567890\n}\n":                "must be a string",
		"server {\n  hosts = [\"http://x.example\"]\n}\n":              "runtime.hcl:2:11: Invalid server.hosts entry",
		"server {\n  allowed_origins = [\"*\"]\n}\n":                   "runtime.hcl:2:21: Invalid server.allowed_origins entry",
		"server {\n  allowed_origins = [\"https://a.example/x\"]\n}\n": "Invalid server.allowed_origins entry",
		"server {\n  allowed_origins = \"https://a.example\"\n}\n":     "runtime.hcl:2:22: Unsuitable value type",
		"server {\n  max_body = \"0\"\n}\n":                            "runtime.hcl:2:14: Invalid server.max_body",
		"server {\n  max_body = \"lots\"\n}\n":                         "runtime.hcl:2:14: Invalid size",
		"server {\n  max_connections = 0\n}\n":                         "Invalid max_connections",
	} {
		_, err := parse(t, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want an error containing %q", src, err, want)
		}
	}
}
