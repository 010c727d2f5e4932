package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// `mcpruntime console` starts a loopback server when none runs and prints
// the console's URL; run again, it finds that server.
func TestConsoleCommand(t *testing.T) {
	addr := freeAddr(t)
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n}\n", addr))
	r := cli(t, dir, "", "console")
	url := "http://" + addr + "/"
	if r.code != 0 || strings.TrimSpace(r.stdout) != url {
		t.Fatalf("console: %+v", r)
	}
	t.Cleanup(func() {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/shutdown", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "/console/app.js") {
		t.Fatalf("GET %s: %s %.200s", url, resp.Status, page)
	}
	if r := cli(t, dir, "", "console"); r.code != 0 || strings.TrimSpace(r.stdout) != url {
		t.Fatalf("console with a server running: %+v", r)
	}
	if r := cli(t, dir, "", "console", "--listen", "0.0.0.0:1"); r.code != 2 || !strings.Contains(r.stderr, "only on loopback") {
		t.Fatalf("console off loopback: %+v", r)
	}
}
