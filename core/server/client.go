package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Client talks to a server on a unix socket or TCP address.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewUnixClient returns a client for the daemon socket at path.
func NewUnixClient(path string) *Client {
	// No kept-alive connections: a request then either reaches a serving
	// daemon or fails to dial (see daemon.Unreachable), never lands on a
	// connection the daemon closes as it stops, where a POST could not be
	// told apart from one that ran.
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://daemon", http: &http.Client{Transport: tr}}
}

// NewClient returns a client for base (e.g. http://127.0.0.1:7878).
func NewClient(base, token string) *Client {
	return &Client{base: base, token: token, http: &http.Client{}}
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e APIError
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// Health asks whether the server is up.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/health", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h Health
	return &h, json.NewDecoder(resp.Body).Decode(&h)
}

// Sessions lists the server's sessions.
func (c *Client) Sessions(ctx context.Context) ([]SessionInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/sessions", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []SessionInfo
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// CloseSession destroys a session.
func (c *Client) CloseSession(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+id, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Shutdown asks the server to exit.
func (c *Client) Shutdown(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/shutdown", struct{}{})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Exec runs code in session, streaming output through emit. An unknown
// session is an error unless req.Create asks to create it; an empty
// session runs in a throw-away one.
func (c *Client) Exec(ctx context.Context, sessionID string, req ExecRequest, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	path := "/v1/execute"
	if sessionID != "" {
		path = "/v1/sessions/" + sessionID + "/execute"
	}
	resp, err := c.do(ctx, http.MethodPost, path, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 128<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("bad event from server: %w", err)
		}
		switch e.Type {
		case "stdout":
			emit(sdk.Event{Kind: sdk.EventStdout, Data: []byte(e.Data)})
		case "stderr":
			emit(sdk.Event{Kind: sdk.EventStderr, Data: []byte(e.Data)})
		case "host_call":
			emit(sdk.Event{Kind: sdk.EventHostCall, HostCall: e.HostCall})
		case "display":
			if e.Display != nil {
				emit(sdk.Event{Kind: sdk.EventDisplay, Display: e.Display})
			}
		case "result":
			return e.Result, nil
		case "error":
			return nil, errors.New(e.Error)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading execution stream: %w", err)
	}
	return nil, errors.New("server closed the execution stream without a result (did the daemon die?)")
}

// WaitHealthy polls until the server answers or d passes.
func (c *Client) WaitHealthy(ctx context.Context, d time.Duration) (*Health, error) {
	deadline := time.Now().Add(d)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		h, err := c.Health(cctx)
		cancel()
		if err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
