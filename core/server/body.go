package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// smallBody is the size below which a body skips the budget: the
// connection limit already bounds what small bodies can hold.
const smallBody = 64 << 10

// bodyReader reads request bodies under the limits: at most MaxBody bytes
// each, within BodyTimeout, and all bodies together within a budget.
type bodyReader struct {
	limits Limits
	// budget bounds the bytes all requests together may hold as bodies: a
	// request waits, first come first served, until its share is free.
	budget *semaphore.Weighted

	mu      sync.Mutex
	reclaim *time.Timer
}

func newBodyReader(l Limits) *bodyReader {
	return &bodyReader{limits: l, budget: semaphore.NewWeighted(4 * l.MaxBody)}
}

// read reads r's body and returns it with a func to call once the bytes
// are no longer needed. It never buffers more than the cap: a declared
// length over it is refused unread, and http.MaxBytesReader stops a
// longer stream and has the connection closed after the response.
func (b *bodyReader) read(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	limit := b.limits.MaxBody
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return nil, nil, tooLarge("request body is %d bytes; the limit is %s (server.max_body)", r.ContentLength, formatSize(limit))
	}
	// The body's share of the budget: its declared length, or the cap
	// when it is sent chunked.
	share := r.ContentLength
	if share < 0 {
		share = limit
	}
	done := func() {}
	if share > smallBody {
		ctx, cancel := context.WithTimeout(r.Context(), b.limits.BodyTimeout)
		err := b.budget.Acquire(ctx, share)
		cancel()
		if err != nil {
			w.Header().Set("Connection", "close")
			return nil, nil, &RequestError{Status: http.StatusServiceUnavailable, Err: errors.New("too many large request bodies at once; retry later")}
		}
		done = func() { b.budget.Release(share) }
	}
	raw, err := b.readAll(w, r, limit)
	if err != nil {
		done()
		return nil, nil, err
	}
	return raw, done, nil
}

func (b *bodyReader) readAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	// A deadline for the body only: cleared as soon as it is read, so it
	// never ends the response stream of a long execution.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(b.limits.BodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("set body deadline: %w", err)
	}
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }() // the connection may be gone; nothing to do then
	// One allocation of the declared length (or of the cap when chunked),
	// with the room ReadFrom wants free before each read, so the buffer
	// never doubles.
	size := r.ContentLength
	if size < 0 {
		size = limit + 1
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + bytes.MinRead)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		b.reclaimSoon()
		return nil, tooLarge("request body exceeds the limit of %s (server.max_body)", formatSize(limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return nil, &RequestError{Status: http.StatusRequestTimeout, Err: fmt.Errorf("request body not received within %s", b.limits.BodyTimeout)}
	case err != nil:
		return nil, badRequest("reading request body: %w", err)
	}
	return buf.Bytes(), nil
}

// reclaimSoon returns the memory of refused oversized bodies to the
// system a second after the last one: without a later collection (an
// idle server has none for minutes) a burst of them would stay resident.
func (b *bodyReader) reclaimSoon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reclaim == nil {
		b.reclaim = time.AfterFunc(time.Second, debug.FreeOSMemory)
		return
	}
	b.reclaim.Reset(time.Second)
}

// readBody reads r's body under the server's limits (see bodyReader.read).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	return s.bodies.read(w, r)
}

// decodeBody reads r's body and decodes it strictly into fields (see
// decodeObject).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, fields []field) error {
	raw, done, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer done()
	return decodeObject(raw, fields)
}
