package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// serveBodies serves h on a loopback port with the given limits.
func serveBodies(t *testing.T, l Limits, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(h, l, hclog.NewNullLogger())
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// The body deadline covers the body only: a response that streams for
// longer than it (a long execution) is neither cut nor cancelled.
func TestBodyDeadlineSparesLongResponses(t *testing.T) {
	l := Limits{BodyTimeout: 200 * time.Millisecond}.WithDefaults()
	bodies := newBodyReader(l)
	addr := serveBodies(t, l, func(w http.ResponseWriter, r *http.Request) {
		raw, done, err := bodies.read(w, r)
		if err != nil {
			writeError(w, statusFor(err), err)
			return
		}
		done()
		f := w.(http.Flusher)
		for i := 0; i < 8; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			fmt.Fprintf(w, "%s %d\n", raw, i)
			f.Flush()
		}
		fmt.Fprintln(w, "end")
	})
	resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader("tick"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasSuffix(string(b), "tick 7\nend\n") {
		t.Fatalf("a response longer than the body deadline: %q %v", b, err)
	}
}

// A body that does not arrive in time is answered 408 and its connection
// closed.
func TestSlowBodyTimesOut(t *testing.T) {
	l := Limits{BodyTimeout: 300 * time.Millisecond}.WithDefaults()
	bodies := newBodyReader(l)
	addr := serveBodies(t, l, func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := bodies.read(w, r); err != nil {
			writeError(w, statusFor(err), err)
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"co", addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("slow body: %s close=%v", resp.Status, resp.Close)
	}
}

// The body budget serves waiters in order and lets one go when its context
// ends.
func TestBudget(t *testing.T) {
	b := newBodyReader(Limits{MaxBody: 10}.WithDefaults()).budget // 40 bytes
	if err := b.Acquire(context.Background(), 32); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx, 20); err == nil {
		t.Fatal("acquired more than is free")
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(context.Background(), 40) }()
	time.Sleep(20 * time.Millisecond)
	b.Release(32)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.Release(40)
	if !b.TryAcquire(40) {
		t.Fatal("budget after: not all of it free")
	}
}
