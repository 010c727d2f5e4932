package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/console"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/session"
	"github.com/mcpruntime/mcpruntime/core/skills"
)

// LoadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid document: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc
}

// Every route the server registers, with every option `serve` passes, is
// in the document, and the document describes no route that is not.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := New(session.New(&config.Config{}, nil, nil, nil),
		WithConsole(console.Handler()), WithRunner(&Runner{}), WithRecorder(&replay.Recorder{}),
		WithReplayAPI(t.TempDir(), nil), WithSkills(&skills.Registry{Dir: t.TempDir()}),
		WithBackends(Backends{Plugins: func(context.Context) any { return nil }, Doctor: func(context.Context) any { return nil }}))
	routes := map[string]bool{}
	for _, p := range srv.Routes() {
		method, path, _ := strings.Cut(p, " ")
		switch path {
		case "/{$}":
			path = "/"
		case "/console/":
			path = "/console/{file}"
		}
		routes[method+" "+path] = true
	}
	described := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described[method+" "+path] = true
		}
	}
	for r := range routes {
		if !described[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range described {
		if !routes[d] {
			t.Errorf("openapi.json describes %s, which the server does not serve", d)
		}
	}
	if len(routes) < 30 {
		t.Fatalf("only %d routes: %v", len(routes), routes)
	}
}

// GET /v1/openapi.json serves the document without a token.
func TestOpenAPIServed(t *testing.T) {
	_, base := consoleServer(t)
	resp := send(t, http.MethodGet, base+OpenAPIPath, "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s %s", OpenAPIPath, resp.Status, resp.Header.Get("Content-Type"))
	}
}
