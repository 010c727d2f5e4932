package mcpserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Endpoint is where a Relay sends MCP: a streamable HTTP URL and the
// client that reaches it (a unix socket's, for the session daemon).
type Endpoint struct {
	URL   string
	HTTP  *http.Client
	Token string
}

// Relay speaks MCP on stdio for a streamable HTTP endpoint: `mcpruntime
// mcp` relays to the session daemon's /mcp, so that the sessions an MCP
// client creates are the workspace's sessions (the ones `exec --session`
// and the HTTP API see), and progress, sampling and cancellation flow
// both ways unchanged. Each message the client writes is POSTed (requests
// concurrently); what the endpoint answers, on the POST's JSON or SSE
// response or on the session's GET stream, is written to the client.
type Relay struct {
	// Connect returns the endpoint; it is called again when the endpoint
	// stops answering or forgets the session (a daemon that stopped and
	// was started again), and the client's initialize is replayed there.
	Connect func(ctx context.Context) (Endpoint, error)
	Logger  hclog.Logger

	outMu sync.Mutex
	out   *bufio.Writer

	mu      sync.Mutex
	ep      Endpoint
	session string
	// protocol is the negotiated version (a string), written as answers
	// are read, with or without mu held.
	protocol atomic.Value
	// initialize and initialized are the client's handshake, replayed on
	// a new endpoint.
	initialize, initialized []byte
	gen                     int
	// inflight counts the client's requests awaiting an answer; while
	// there are any, the session's GET stream is open (stopListen ends it).
	inflight   int
	stopListen context.CancelFunc
	runCtx     context.Context
	wg         sync.WaitGroup
}

// Run relays between in and out until in ends or ctx is done.
func (r *Relay) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	if r.Logger == nil {
		r.Logger = hclog.NewNullLogger()
	}
	r.out = bufio.NewWriter(out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := r.endpoint(ctx, -1); err != nil {
		return err
	}
	r.runCtx = ctx
	wg := &r.wg
	defer wg.Wait()
	rd := bufio.NewReader(in)
	for {
		line, err := rd.ReadBytes('\n')
		if msg := bytes.TrimSpace(line); len(msg) > 0 {
			var head struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(msg, &head) != nil {
				r.write([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`))
			} else {
				msg = append([]byte(nil), msg...)
				isRequest := head.Method != "" && len(head.ID) > 0 && string(head.ID) != "null"
				switch {
				case head.Method == "initialize":
					r.mu.Lock()
					r.initialize, r.session = msg, ""
					r.mu.Unlock()
					r.forward(ctx, msg, head.ID)
				case head.Method == "notifications/initialized":
					r.mu.Lock()
					r.initialized = msg
					r.mu.Unlock()
					r.forward(ctx, msg, nil)
				case isRequest:
					r.busy(1)
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer r.busy(-1)
						r.forward(ctx, msg, head.ID)
					}()
				default: // notifications and answers to the server's requests
					r.forward(ctx, msg, nil)
				}
			}
		}
		if err != nil {
			cancel()
			r.closeSession()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read MCP from stdin: %w", err)
		}
	}
}

// endpoint returns the current endpoint and its generation; when stale
// names the generation that failed, a new one is connected (once per
// generation) and the client's handshake is replayed on it.
func (r *Relay) endpoint(ctx context.Context, stale int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stale != r.gen-1 && r.gen > 0 {
		return r.gen - 1, nil // another caller already reconnected
	}
	ep, err := r.Connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect to the MCP endpoint: %w", err)
	}
	r.ep, r.gen = ep, r.gen+1
	if stale >= 0 && r.initialize != nil {
		r.Logger.Warn("MCP endpoint lost its session; replaying the client's initialize on a new one")
		r.session = ""
		resp, err := r.post(ctx, r.initialize, true)
		if err == nil {
			err = r.drain(resp, false)
		}
		if err != nil {
			return 0, fmt.Errorf("replay initialize: %w", err)
		}
		if r.initialized != nil {
			if resp, err := r.post(ctx, r.initialized, true); err == nil {
				_ = r.drain(resp, false)
			}
		}
		// A stream open on the old session would wait there forever.
		if r.stopListen != nil {
			r.restartListen()
		}
	}
	return r.gen - 1, nil
}

// errSessionGone means the endpoint no longer knows the session.
var errSessionGone = errors.New("the MCP endpoint does not know this session")

// forward POSTs msg and writes what comes back; a request (id set) that
// fails gets a JSON-RPC error so the client does not wait forever.
func (r *Relay) forward(ctx context.Context, msg []byte, id json.RawMessage) {
	r.mu.Lock()
	gen := r.gen - 1
	r.mu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var resp *http.Response
		resp, err = r.post(ctx, msg, false)
		if err == nil {
			err = r.drain(resp, true)
			if err == nil {
				return
			}
		}
		if ctx.Err() != nil || (!errors.Is(err, errSessionGone) && !unreachable(err)) {
			break
		}
		if gen, err = r.endpoint(ctx, gen); err != nil {
			break
		}
	}
	r.Logger.Warn("MCP message not relayed", "error", err)
	if len(id) > 0 && ctx.Err() == nil {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id,
			"error": map[string]any{"code": -32603, "message": "mcpruntime: " + err.Error()}})
		r.write(b)
	}
}

// post sends msg to the current endpoint. r.mu must not be held unless
// locked says it is (the reconnect path): a POST may last as long as the
// call it carries.
func (r *Relay) post(ctx context.Context, msg []byte, locked bool) (*http.Response, error) {
	if !locked {
		r.mu.Lock()
	}
	ep, hdr := r.ep, r.headerSet()
	if !locked {
		r.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := ep.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		if !locked {
			r.mu.Lock()
		}
		if r.session == "" {
			r.session = sid
		}
		if !locked {
			r.mu.Unlock()
		}
	}
	return resp, nil
}

// headerSet is the session's headers; r.mu must be held.
func (r *Relay) headerSet() http.Header {
	h := http.Header{}
	if r.session != "" {
		h.Set("Mcp-Session-Id", r.session)
	}
	if p, _ := r.protocol.Load().(string); p != "" {
		h.Set("Mcp-Protocol-Version", p)
	}
	if r.ep.Token != "" {
		h.Set("Authorization", "Bearer "+r.ep.Token)
	}
	return h
}

// drain writes the messages of resp (one JSON body or an SSE stream) to
// the client when relay is set, and closes it.
func (r *Relay) drain(resp *http.Response, relay bool) error {
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound && resp.Request.Header.Get("Mcp-Session-Id") != "":
		return errSessionGone
	case resp.StatusCode == http.StatusAccepted:
		return nil
	case resp.StatusCode >= 300:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("MCP endpoint answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	emit := func(b []byte) {
		r.noteProtocol(b)
		if relay {
			r.write(b)
		}
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" {
		return readSSE(resp.Body, emit)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read MCP answer: %w", err)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		emit(bytes.TrimSpace(b))
	}
	return nil
}

// noteProtocol records the protocol version an initialize answer names,
// sent as Mcp-Protocol-Version on later requests.
func (r *Relay) noteProtocol(b []byte) {
	var res struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if json.Unmarshal(b, &res) == nil && res.Result.ProtocolVersion != "" {
		r.protocol.Store(res.Result.ProtocolVersion)
	}
}

// busy counts requests in flight (delta 1 or -1). While any is, the
// session's GET stream is open: messages not tied to one request, such
// as sampling requests, arrive there. It is closed between calls, so
// that an idle client lets the daemon stop or exit idle (the relay
// reconnects and replays the handshake on the next call).
func (r *Relay) busy(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight += delta
	switch {
	case r.inflight == 1 && delta > 0 && r.initialized != nil:
		r.restartListen()
	case r.inflight == 0 && r.stopListen != nil:
		r.stopListen()
		r.stopListen = nil
	}
}

// restartListen (re)opens the GET stream, on the current session; r.mu
// must be held.
func (r *Relay) restartListen() {
	if r.stopListen != nil {
		r.stopListen()
	}
	lctx, cancel := context.WithCancel(r.runCtx)
	r.stopListen = cancel
	r.listen(lctx, &r.wg)
}

// listen keeps the session's GET stream open until ctx ends.
func (r *Relay) listen(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			r.mu.Lock()
			gen := r.gen - 1
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ep.URL, nil)
			if err == nil {
				req.Header = r.headerSet()
				req.Header.Set("Accept", "text/event-stream")
			}
			client := r.ep.HTTP
			r.mu.Unlock()
			if err != nil {
				r.Logger.Error("MCP listening stream", "error", err)
				return
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				err = r.drain(resp, true)
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errSessionGone) || unreachable(err) {
				if _, cerr := r.endpoint(ctx, gen); cerr != nil {
					r.Logger.Warn("MCP endpoint", "error", cerr)
				}
			}
			if time.Since(start) > 10*time.Second {
				backoff = 100 * time.Millisecond
			}
			r.Logger.Debug("MCP listening stream ended; reopening", "error", err, "after", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
}

// closeSession ends the session at the endpoint (best effort).
func (r *Relay) closeSession() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.ep.URL, nil)
	if err != nil {
		return
	}
	req.Header = r.headerSet()
	if resp, err := r.ep.HTTP.Do(req); err == nil {
		resp.Body.Close()
	}
}

// write sends one message to the client.
func (r *Relay) write(b []byte) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	r.out.Write(b)
	r.out.WriteByte('\n')
	if err := r.out.Flush(); err != nil {
		r.Logger.Debug("write to MCP client", "error", err)
	}
}

// readSSE calls emit with the data of each event of an SSE stream.
func readSSE(body io.Reader, emit func([]byte)) error {
	rd := bufio.NewReader(body)
	var data []byte
	for {
		line, err := rd.ReadBytes('\n')
		l := bytes.TrimRight(line, "\r\n")
		switch {
		case len(l) == 0 && len(line) > 0:
			if len(bytes.TrimSpace(data)) > 0 {
				emit(data)
			}
			data = nil
		case bytes.HasPrefix(l, []byte("data:")):
			v := bytes.TrimPrefix(l[5:], []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
		if err != nil {
			if len(bytes.TrimSpace(data)) > 0 {
				emit(data)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read MCP event stream: %w", err)
		}
	}
}

// unreachable reports whether err means the endpoint could not be
// reached (a daemon that stopped): the message may be sent again after
// reconnecting, as nothing ran.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
