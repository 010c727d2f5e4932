package daemon

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mcpruntime/mcpruntime/core/server"
)

// Unreachable is true only when a request could not have run: the socket is
// gone or refuses. An answer from a live daemon, even an error, is not.
func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	gone := server.NewUnixClient(filepath.Join(dir, "gone.sock"))
	if _, err := gone.Health(context.Background()); err == nil || !Unreachable(err) {
		t.Fatalf("missing socket: %v, want unreachable", err)
	}

	sock := filepath.Join(dir, "refusing.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: connection refused
	if _, err := server.NewUnixClient(sock).Health(context.Background()); err == nil || !Unreachable(err) {
		t.Fatalf("refusing socket: %v, want unreachable", err)
	}

	live := filepath.Join(dir, "live.sock")
	ln, err = net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if _, err := server.NewUnixClient(live).Health(context.Background()); err == nil || Unreachable(err) {
		t.Fatalf("answering daemon: %v, want a reachable error", err)
	}
}
