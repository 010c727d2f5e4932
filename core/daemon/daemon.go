// Package daemon keeps sessions alive between CLI invocations: one
// mcpruntime process per workspace serves the API on a unix socket under
// the state dir, started on demand by `exec --session` and exiting after an
// idle period. Scripts get persistent sessions without managing a service.
package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/core/session"
)

// SocketPath is where the daemon for cfg's workspace listens. Unix socket
// paths are limited to 108 bytes, so long state dirs fall back to a hashed
// name in the temp dir.
func SocketPath(cfg *config.Config) string {
	p := filepath.Join(cfg.StateDir, "daemon.sock")
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(cfg.StateDir))
	return filepath.Join(os.TempDir(), "mcpruntime-"+hex.EncodeToString(sum[:6])+".sock")
}

// LogPath is the daemon's log file.
func LogPath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "daemon.log") }

// Digest identifies a configuration file's content.
func Digest(cfg *config.Config) string {
	if cfg.Path == "" {
		return "defaults"
	}
	b, err := os.ReadFile(cfg.Path)
	if err != nil {
		return "unreadable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Connect returns a client of the running daemon, or an error if none runs.
func Connect(ctx context.Context, cfg *config.Config) (*server.Client, *server.Health, error) {
	c := server.NewUnixClient(SocketPath(cfg))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := c.Health(cctx)
	if err != nil {
		return nil, nil, err
	}
	return c, h, nil
}

// Unreachable reports whether err means a request never reached the
// daemon (its socket refused or was gone): nothing ran, so the request may
// be sent again, e.g. to a new daemon when the old one stopped between the
// health check and the request.
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Ensure returns a client of the workspace's daemon, starting one (this
// executable, `serve --daemon`) if none answers.
func Ensure(ctx context.Context, cfg *config.Config, args []string) (*server.Client, *server.Health, error) {
	if c, h, err := Connect(ctx, cfg); err == nil {
		return c, h, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(LogPath(cfg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, append(args, "serve", "--daemon")...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start daemon: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaped so it does not linger as a zombie while we run
	c := server.NewUnixClient(SocketPath(cfg))
	h, err := c.WaitHealthy(ctx, 30*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon did not come up (see %s): %w", LogPath(cfg), err)
	}
	return c, h, nil
}

// Serve runs the daemon in the foreground until it is idle for cfg's idle
// timeout, asked to shut down, or signalled.
func Serve(ctx context.Context, cfg *config.Config, m *session.Manager, logger hclog.Logger, opts ...server.Option) error {
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	// One daemon per workspace: the lock outlives crashes (the kernel drops it).
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, "daemon.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := waitLock(ctx, cfg, lock); err != nil {
		return err
	}
	sock := SocketPath(cfg)
	_ = os.Remove(sock) // stale: we hold the lock, so nobody listens on it
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen %s: %w", sock, err)
	}
	defer os.Remove(sock)
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("restrict %s to its owner: %w", sock, err)
	}
	// The sessions of the previous daemon: hibernated, or live when it died.
	adopt(ctx, cfg, m, KindDaemon, logger)
	// No browser reaches a unix socket; the default guard refuses any
	// request that looks like one all the same.
	limits := Limits(cfg)
	srv := server.New(m, append([]server.Option{server.WithLogger(logger), server.WithConfigDigest(Digest(cfg)), server.WithLimits(limits)}, opts...)...)
	// Before stopping, the socket goes first: a client dialling then fails
	// to connect (daemon.Unreachable) and starts the next daemon, instead of
	// connecting into a listener that closes under it, which it could not
	// tell from a daemon that died running its code. Connections made just
	// before are still accepted and served during a short drain.
	stopping := func() {
		_ = os.Remove(sock)
		time.Sleep(socketDrain)
	}
	return run(ctx, server.NewHTTPServer(srv, limits, logger), ownUserOnly(ln.(*net.UnixListener), logger), srv, cfg.DaemonIdle, m, logger, stopping, "session daemon")
}

// waitLock takes the workspace's daemon lock. A daemon that stopped
// answering may still be shutting down its sessions and plugins while it
// holds the lock (after `daemon stop` or an idle exit): the new daemon waits
// for it rather than failing the command that started it. It gives up when
// another daemon answers (it won a race to start) or after 30 s.
func waitLock(ctx context.Context, cfg *config.Config, lock *os.File) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("daemon lock: %w", err)
		}
		if _, _, cerr := Connect(ctx, cfg); cerr == nil {
			return errors.New("another mcpruntime daemon already serves this workspace")
		}
		if time.Now().After(deadline) {
			return errors.New("another mcpruntime daemon holds this workspace's lock and does not answer (still shutting down after 30s?)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ServeTCP runs `mcpruntime serve` on a TCP address. Requests must name
// the listener (or a server.hosts entry) as their Host and come from no
// browser page but the server's own origin or server.allowed_origins;
// at most server.max_connections connections are served at once.
func ServeTCP(ctx context.Context, cfg *config.Config, m *session.Manager, addr, token string, logger hclog.Logger, opts ...server.Option) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	guard, err := server.NewGuard(ln.Addr().String(), cfg.Server.Hosts, cfg.Server.AllowedOrigins)
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	adopt(ctx, cfg, m, KindServer, logger)
	limits := Limits(cfg)
	logger.Info("serving", "address", ln.Addr().String(), "auth", token != "",
		"hosts", cfg.Server.Hosts, "allowed_origins", cfg.Server.AllowedOrigins, "max_connections", limits.MaxConnections)
	srv := server.New(m, append([]server.Option{server.WithLogger(logger), server.WithToken(token), server.WithConfigDigest(Digest(cfg)),
		server.WithGuard(guard), server.WithLimits(limits)}, opts...)...)
	return run(ctx, server.NewHTTPServer(srv, limits, logger), server.LimitListener(ln, limits.MaxConnections), srv, 0, m, logger, nil, "server")
}

// Limits are the server limits runtime.hcl's server block sets (zero
// fields keep the server's defaults).
func Limits(cfg *config.Config) server.Limits {
	l := server.Limits{
		MaxBody:        cfg.Server.MaxBody,
		MaxCode:        cfg.Server.MaxCode,
		MaxConnections: cfg.Server.MaxConnections,
		HeaderTimeout:  cfg.Server.HeaderTimeout,
	}
	return l.WithDefaults()
}

// hibernateBudget bounds the checkpoints of a stopping process's sessions.
const hibernateBudget = 2 * time.Minute

// socketDrain is how long a stopping daemon keeps accepting after removing
// its socket: connections already in the listen backlog are accepted in
// microseconds unless the machine is starved.
const socketDrain = 200 * time.Millisecond

// run serves until a signal, a shutdown request, an idle period or a
// listener error, then stops: the HTTP server drains, agent runs end, the
// sessions are hibernated (with a registry) and the plugins stop. who
// names the process in the hibernated sessions' notes.
func run(ctx context.Context, hs *http.Server, ln net.Listener, srv *server.Server, idle time.Duration, m *session.Manager, logger hclog.Logger, stopping func(), who string) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var tick <-chan time.Time
	if idle > 0 {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	var err error
	why := "the " + who + " stopped"
loop:
	for {
		select {
		case <-ctx.Done():
			logger.Info("signal received; shutting down")
			why = "the " + who + " was told to stop (signal)"
			break loop
		case <-srv.Done():
			logger.Info("shutdown requested")
			why = "the " + who + " was asked to stop"
			break loop
		case err = <-errc:
			break loop
		case <-tick:
			if srv.Idle(idle) {
				logger.Info("idle; shutting down", "idle", idle)
				why = fmt.Sprintf("the %s exited after %s idle", who, idle)
				break loop
			}
		}
	}
	if stopping != nil {
		stopping()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	srv.Close()
	// Hibernation has its own budget: the drain above may have used the
	// shutdown's, and a session not checkpointed loses its variables.
	hctx, hcancel := context.WithTimeout(context.Background(), hibernateBudget)
	defer hcancel()
	m.Hibernate(hctx, why)
	m.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
