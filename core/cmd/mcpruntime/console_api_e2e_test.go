package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mcpruntime/mcpruntime/core/server"
)

// Streams and static files are validated by what they decode to: an
// NDJSON or SSE stream as the array of its events, text as a string.
func init() {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		var out []any
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var v any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, sc.Err()
	})
	openapi3filter.RegisterBodyDecoder("text/event-stream", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		var out []any
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var v any
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, sc.Err()
	})
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// validator is an http.RoundTripper that checks every request and its
// response against /v1/openapi.json and records which operations ran.
type validator struct {
	t      *testing.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool
	// invalid: the next requests are meant to break the document's rules
	// (their refusal is what is checked): their validation must fail.
	invalid bool
}

func newValidator(t *testing.T, doc []byte) *validator {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, router: r, seen: map[string]bool{}}
}

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s: not in openapi.json: %v", req.Method, req.URL.Path, err)
		return http.DefaultTransport.RoundTrip(req)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil && !v.invalid {
		v.t.Errorf("%s %s: request does not match openapi.json: %v", req.Method, req.URL.Path, err)
	} else if err == nil && v.invalid {
		v.t.Errorf("%s %s: a request breaking the API's rules passes openapi.json", req.Method, req.URL.Path)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(rb)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		v.t.Errorf("%s %s → %d: response does not match openapi.json: %v\n%.600s", req.Method, req.URL.Path, resp.StatusCode, err, rb)
	}
	v.mu.Lock()
	v.seen[req.Method+" "+route.Path] = true
	v.mu.Unlock()
	return resp, nil
}

// call sends a JSON request through the validator and decodes the answer.
func (v *validator) call(base, method, path string, body any, out any) int {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			v.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	if body != nil || method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasSuffix(path, "/stream") {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := (&http.Client{Transport: v}).Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			v.t.Fatalf("%s %s: %s: %v", method, path, resp.Status, err)
		}
	}
	return resp.StatusCode
}

// Every operation of /v1/openapi.json, called on the real server with
// real sessions, a scripted agent run, replay, skills and backends: each
// request and each response (errors included) validates against it.
func TestConsoleAPIMatchesOpenAPI(t *testing.T) {
	f := startConsoleFixture(t, agentScript(), nil)
	resp, err := http.Get(f.base + server.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t, doc)
	b := f.base
	must := func(code, want int, what string) {
		t.Helper()
		if code != want {
			t.Fatalf("%s: status %d, want %d", what, code, want)
		}
	}
	for _, p := range []string{server.OpenAPIPath, "/", "/console/app.js", "/console/app.css", "/v1/health", "/v1/login", "/v1/sessions", "/v1/skills", "/v1/backends", "/v1/runs", "/v1/replay"} {
		must(v.call(b, "GET", p, nil, nil), http.StatusOK, "GET "+p)
	}
	must(v.call(b, "POST", "/v1/login", map[string]string{"token": "no-token-is-configured"}, nil), http.StatusOK, "login")
	// curl pretending to be another site's page: the console and its API
	// refuse it (403, no CORS headers) before anything runs.
	for _, p := range []string{"/", "/console/app.js", "/v1/sessions", "/v1/login"} {
		for _, h := range []map[string]string{{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}} {
			req, _ := http.NewRequest("GET", b+p, nil)
			for k, val := range h {
				req.Header.Set(k, val)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("GET %s with %v: %s", p, h, resp.Status)
			}
		}
	}
	must(v.call(b, "POST", "/v1/logout", map[string]any{}, nil), http.StatusOK, "logout")

	var sess struct{ ID string }
	must(v.call(b, "POST", "/v1/sessions", map[string]any{}, &sess), http.StatusOK, "open")
	id := url.PathEscape(sess.ID)
	cells := []string{
		"x = 1\nopen('a.txt', 'w').write('one\\n')\nprint('a')",
		"from IPython.display import display, HTML\ndisplay(HTML('<b>bold</b>'))\nx = 2\nopen('a.txt', 'w').write('two\\n')",
	}
	for _, c := range cells {
		must(v.call(b, "POST", "/v1/sessions/"+id+"/execute", map[string]any{"code": c}, nil), http.StatusOK, "execute")
	}
	must(v.call(b, "POST", "/v1/execute", map[string]any{"code": "print(x)", "session": sess.ID}, nil), http.StatusOK, "execute by body")
	must(v.call(b, "POST", "/v1/execute/stream", map[string]any{"code": "print(x + 1)", "session": sess.ID}, nil), http.StatusOK, "execute SSE")
	must(v.call(b, "POST", "/v1/sessions/nope/execute", map[string]any{"code": "1"}, nil), http.StatusNotFound, "unknown session")
	v.invalid = true
	must(v.call(b, "POST", "/v1/sessions", map[string]any{"bogus": 1}, nil), http.StatusBadRequest, "strict body")
	must(v.call(b, "POST", "/v1/runs", map[string]any{}, nil), http.StatusBadRequest, "run without a task")
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/x/diff", nil, nil), http.StatusBadRequest, "bad step")
	v.invalid = false
	waitFor(t, "the state of step 4 saved", func() bool {
		var st server.StepState
		return v.call(b, "GET", "/v1/sessions/"+id+"/state", nil, &st) == http.StatusOK && st.Step == 4 && st.Variables != nil
	})
	must(v.call(b, "GET", "/v1/replay/"+id+"?offset=1&limit=2", nil, nil), http.StatusOK, "steps")
	var diff server.WorkspaceDiff
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/2/diff", nil, &diff), http.StatusOK, "diff")
	if len(diff.Changed) != 1 || diff.Changed[0].Path != "a.txt" || !strings.Contains(diff.Changed[0].Diff, "+two") {
		t.Fatalf("diff of step 2: %+v", diff)
	}
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/2/diff?from=1", nil, nil), http.StatusOK, "diff from")
	var outs []struct{ Data map[string]string }
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/2/outputs", nil, &outs), http.StatusOK, "outputs")
	if len(outs) != 1 || outs[0].Data["text/html"] != "<b>bold</b>" {
		t.Fatalf("outputs of step 2: %+v", outs)
	}
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/1/state", nil, nil), http.StatusOK, "step state")
	must(v.call(b, "GET", "/v1/replay/"+id+"/steps/99/state", nil, nil), http.StatusNotFound, "no such step")
	v.call(b, "POST", "/v1/sessions/"+id+"/snapshot", map[string]any{}, nil) // 200 or 409: both documented
	v.call(b, "POST", "/v1/replay/restore", map[string]any{"id": "restored-1", "backend": "hostpython", "from_session": sess.ID, "step": 1}, nil)
	var rep struct {
		Session     string
		StateSource string `json:"state_source"`
	}
	must(v.call(b, "POST", "/v1/replay/"+id+"/fork", map[string]any{"step": 1}, &rep), http.StatusOK, "fork")
	must(v.call(b, "POST", "/v1/replay/"+url.PathEscape(rep.Session)+"/resume", map[string]any{"step": 0}, nil), http.StatusOK, "resume")

	var run struct{ ID, Status string }
	must(v.call(b, "POST", "/v1/runs", map[string]any{"task": "change the notes"}, &run), http.StatusAccepted, "start run")
	waitFor(t, "the run done", func() bool {
		var r struct{ Status string }
		v.call(b, "GET", "/v1/runs/"+run.ID, nil, &r)
		return r.Status != "running"
	})
	must(v.call(b, "DELETE", "/v1/runs/"+run.ID, nil, nil), http.StatusAccepted, "cancel a finished run")
	must(v.call(b, "POST", "/v1/runs/"+run.ID+"/resume", map[string]any{}, nil), http.StatusConflict, "resume a done run")
	must(v.call(b, "DELETE", "/v1/skills/"+seedSkill, nil, nil), http.StatusNoContent, "delete skill")
	must(v.call(b, "DELETE", "/v1/skills/"+seedSkill, nil, nil), http.StatusNotFound, "delete it again")
	must(v.call(b, "GET", "/v1/doctor", nil, nil), http.StatusOK, "doctor")
	must(v.call(b, "DELETE", "/v1/sessions/"+id, nil, nil), http.StatusNoContent, "close")
	must(v.call(b, "POST", "/v1/shutdown", map[string]any{}, nil), http.StatusOK, "shutdown")

	var missing []string
	spec, _ := openapi3.NewLoader().LoadFromData(doc)
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			if !v.seen[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("operations not exercised: %v", missing)
	}
}

// waitFor polls cond for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
