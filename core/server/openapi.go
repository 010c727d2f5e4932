package server

import (
	_ "embed"
	"net/http"
)

// OpenAPIPath serves the API's OpenAPI 3.1 document.
const OpenAPIPath = "/v1/openapi.json"

// OpenAPI is the OpenAPI 3.1 document describing every endpoint (its
// test validates the requests and responses of each against it).
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(OpenAPI)
}
