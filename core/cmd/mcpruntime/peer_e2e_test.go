package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Another user's process must not run code in this user's sessions, even
// when the daemon's socket is reachable (a loose mode, a shared state dir):
// the daemon checks its peer's credentials.
func TestDaemonRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	// The system's python: another user cannot run root's pyenv shims.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	dir := project(t, "")
	if r := cli(t, dir, "", "exec", "--session", "s", "-c", "x = 1"); r.code != 0 {
		t.Fatalf("exec: %+v", r)
	}
	sock := filepath.Join(dir, ".mcpruntime", "daemon.sock")
	if len(sock) >= 100 {
		t.Skipf("socket path %s is too long for this check", sock)
	}
	// Open the way to the socket for everyone: only the peer check remains.
	for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	// CONNECTED proves the probe reached the socket; what follows is the
	// daemon's answer, or CLOSED when it hung up (a refusal shows as an
	// empty read, a reset or a broken pipe, depending on timing).
	probe := `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("CONNECTED")
try:
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: daemon\r\nConnection: close\r\n\r\n")
    print(s.recv(4096).decode(errors="replace") or "CLOSED")
except OSError as e:
    print("CLOSED", e)
`
	cmd := exec.Command(py, "-c", probe, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "200 OK") {
		t.Fatalf("another user was served by the daemon: %s", out)
	}
	if !strings.Contains(string(out), "CONNECTED") || !strings.Contains(string(out), "CLOSED") {
		t.Fatalf("the probe did not reach the socket, so the check proves nothing: %v\n%s", err, out)
	}
	if r := cli(t, dir, "", "exec", "--session", "s", "-c", "print(x + 1)"); r.stdout != "2\n" {
		t.Fatalf("the owner is still served: %+v", r)
	}
}
