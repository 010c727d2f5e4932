package daemon

import (
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// peerListener accepts only connections from processes of the daemon's own
// user (or root). The socket is also 0600, but a mode is set after the
// socket exists and a state dir can be shared; the peer's credentials are
// what the kernel vouches for. Another user's process must not run code in
// this user's sessions.
type peerListener struct {
	*net.UnixListener
	uid    int
	logger hclog.Logger
}

func ownUserOnly(ln *net.UnixListener, logger hclog.Logger) net.Listener {
	return &peerListener{UnixListener: ln, uid: os.Geteuid(), logger: logger}
}

// Accept returns the next connection from an allowed peer; others are
// closed and logged.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == l.uid || uid == 0) {
			return c, nil
		}
		l.logger.Warn("refused a connection to the daemon socket", "peer_uid", uid, "error", err)
		c.Close()
	}
}

func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return -1, fmt.Errorf("peer credentials: %w", credErr)
	}
	return int(cred.Uid), nil
}
