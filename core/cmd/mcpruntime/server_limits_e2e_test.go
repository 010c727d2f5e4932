package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Resource exhaustion through the real binary: huge bodies, slow and
// half-open clients.

// procStatus reads a kB field (VmRSS, VmHWM) of /proc/PID/status in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openSockets counts the process's open sockets.
func openSockets(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// jsonBomb streams {"code":"aaaa…"} of n bytes without holding it.
type jsonBomb struct{ sent, n int64 }

func (b *jsonBomb) Read(p []byte) (int, error) {
	if b.sent >= b.n {
		return 0, io.EOF
	}
	head := `{"code":"`
	k := 0
	for k < len(p) && b.sent < b.n {
		switch {
		case b.sent < int64(len(head)):
			p[k] = head[b.sent]
		case b.sent == b.n-2:
			p[k] = '"'
		case b.sent == b.n-1:
			p[k] = '}'
		default:
			p[k] = 'a'
		}
		k++
		b.sent++
	}
	return k, nil
}

func TestServeBodyCapKeepsMemory(t *testing.T) {
	s := serve(t, "")
	pid := s.cmd.Process.Pid
	before := procStatus(t, pid, "VmRSS")
	const size = 100 << 20
	attack := func(chunked bool) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", "http://"+s.addr+"/v1/execute", io.NopCloser(&jsonBomb{n: size}))
				if err != nil {
					t.Error(err)
					return
				}
				if !chunked {
					req.ContentLength = size
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("chunked=%v: %v", chunked, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "MiB") {
					t.Errorf("chunked=%v: %s %.200s; want 413 naming the limit", chunked, resp.Status, body)
				}
			}()
		}
		wg.Wait()
	}
	attack(false)
	attack(true)
	// Memory goes back: poll, the runtime returns freed pages in the background.
	var after int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = procStatus(t, pid, "VmRSS")
		if after < 100<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("RSS before %d MiB, peak %d MiB, after %d MiB", before>>20, procStatus(t, pid, "VmHWM")>>20, after>>20)
	if after >= 100<<20 {
		t.Fatalf("RSS after 8x100 MB bodies: %d MiB; want < 100 MiB", after>>20)
	}
	// Refused bodies are handed back to the system a second after the
	// burst (the log shows where it settles).
	for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle) && after > before+16<<20; {
		time.Sleep(200 * time.Millisecond)
		after = procStatus(t, pid, "VmRSS")
	}
	t.Logf("RSS settled at %d MiB", after>>20)
	if code, _, body := s.req(t, "POST", "/v1/execute", `{"code":"print(4)"}`, nil); code != http.StatusOK {
		t.Fatalf("after the attack: %d %s", code, body)
	}
	// A code cap below the body cap: a 2 MiB program is refused too, and
	// the replay log never sees it.
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/execute", io.NopCloser(&jsonBomb{n: 2 << 20}))
	req.ContentLength = 2 << 20
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "1 MiB") {
		t.Fatalf("2 MiB of code: %s %.200s; want 413 naming the 1 MiB limit", resp.Status, body)
	}
}

// halfRequest connects and sends a request line and half its headers.
func halfRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "POST /v1/execute HTTP/1.1\r\nHost: %s\r\nContent-Ty", addr); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitClosed polls c until the server closes it or d passes.
func waitClosed(c net.Conn, d time.Duration) error {
	deadline := time.Now().Add(d)
	r := bufio.NewReader(c)
	for time.Now().Before(deadline) {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.ReadByte(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return nil // closed (EOF or reset)
		}
	}
	return fmt.Errorf("still open after %s", d)
}

func TestServeDropsSlowHeaders(t *testing.T) {
	s := serve(t, "  header_timeout = \"1s\"\n")
	c := halfRequest(t, s.addr)
	defer c.Close()
	start := time.Now()
	if err := waitClosed(c, 10*time.Second); err != nil {
		t.Fatalf("a client that sent half its headers: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dropped after %s; the header timeout is 1s", d)
	}
}

func TestServeHalfOpenConnectionsAreBounded(t *testing.T) {
	s := serve(t, "  header_timeout = \"1s\"\n  max_connections = 16\n")
	pid := s.cmd.Process.Pid
	base := openSockets(t, pid)
	conns := make([]net.Conn, 0, 300)
	for i := 0; i < 300; i++ {
		conns = append(conns, halfRequest(t, s.addr))
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// While they wait, the server holds at most max_connections of them.
	peak := 0
	for i := 0; i < 20; i++ {
		if n := openSockets(t, pid) - base; n > peak {
			peak = n
		}
		time.Sleep(50 * time.Millisecond)
	}
	if peak > 16 {
		t.Fatalf("server held %d half-open connections; max_connections is 16", peak)
	}
	// Every one of them is dropped in turn.
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := waitClosed(c, 60*time.Second); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("half-open connections: %v", err)
	}
	if code, _, body := s.req(t, "GET", "/v1/health", "", nil); code != http.StatusOK {
		t.Fatalf("after the half-open connections: %d %s", code, body)
	}
}
