package vmm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
)

// CloudHypervisor drives the cloud-hypervisor binary through its REST API
// on a unix socket (--api-socket): vm.create, vm.boot, vm.pause/resume,
// vm.snapshot, vm.restore, vm.shutdown, vmm.ping. The agent channel is a
// hybrid vsock: a unix socket on the host, CONNECT <port> to reach the
// agent's vsock listener. Cloud Hypervisor needs KVM (no emulation).
type CloudHypervisor struct {
	Binary string
}

// Name implements Driver.
func (c *CloudHypervisor) Name() string { return "cloud-hypervisor" }

// Accels implements Driver.
func (c *CloudHypervisor) Accels() []string { return []string{AccelKVM} }

var chVersionRE = regexp.MustCompile(`v?(\d+)\.(\d+)`)

// chMinMajor is the first release with the "payload" VM config and
// file:// snapshot URLs in the shape used here.
const chMinMajor = 30

// CHInstallHelp tells how to get Cloud Hypervisor where no package
// registry ships it.
const CHInstallHelp = "Cloud Hypervisor is not packaged by Debian; download the static binary of a release (v30 or newer) from the project's GitHub releases page (cloud-hypervisor-static), install it as /usr/local/bin/cloud-hypervisor, and make sure /dev/kvm is hardware KVM"

// Check implements Driver.
func (c *CloudHypervisor) Check(ctx context.Context) error {
	path, err := exec.LookPath(c.Binary)
	if err != nil {
		return fmt.Errorf("%w: %s not found on PATH. %s", ErrNoVMM, c.Binary, CHInstallHelp)
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: %s --version: %v", ErrNoVMM, path, err)
	}
	m := chVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("%w: cannot read the version of %s: %q", ErrNoVMM, path, out)
	}
	if major, _ := strconv.Atoi(m[1]); major < chMinMajor {
		return fmt.Errorf("%w: %s is version %s.%s; v%d or newer is needed. %s", ErrNoVMM, path, m[1], m[2], chMinMajor, CHInstallHelp)
	}
	return nil
}

// chAPI is a client of the REST API.
type chAPI struct {
	http *http.Client
}

func newCHAPI(sock string) *chAPI {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &chAPI{http: &http.Client{Transport: tr}}
}

// call sends a request to /api/v1/<endpoint>. Errors carry the body the
// VMM returned, which says what it did not like.
func (a *chAPI) call(ctx context.Context, method, endpoint string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost/api/v1/"+endpoint, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cloud-hypervisor %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("cloud-hypervisor %s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

type chMachine struct {
	p     *proc
	api   *chAPI
	agent net.Conn
	once  sync.Once
}

func (c *CloudHypervisor) start(ctx context.Context, spec Spec) (*chMachine, string, error) {
	if spec.Accel != AccelKVM {
		return nil, "", fmt.Errorf("%w: cloud-hypervisor needs KVM; this host offers only %s (use vmm = \"qemu\")", ErrNoVMM, spec.Accel)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, "", err
	}
	apiSock := filepath.Join(spec.Dir, "api.sock")
	cmd := exec.Command(c.Binary, "--api-socket", "path="+apiSock)
	// The marker Sweep and Attach look for on the command line.
	cmd.Args[0] = Marker(spec.ID)
	p, err := startProc(cmd, spec.Dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNoVMM, err)
	}
	m := &chMachine{p: p, api: newCHAPI(apiSock)}
	// The API socket appears shortly after start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := m.api.call(ctx, http.MethodGet, "vmm.ping", nil); err == nil {
			break
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.kill()
			return nil, "", fmt.Errorf("%w: cloud-hypervisor API did not come up (%s)", ErrNoVMM, p.describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return m, filepath.Join(spec.Dir, "vsock.sock"), nil
}

// Launch implements Driver.
func (c *CloudHypervisor) Launch(ctx context.Context, spec Spec) (Machine, error) {
	spec.WorkspaceMiB = 0 // no workspace disk: the guest keeps a tmpfs (untested here)
	m, vsock, err := c.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"cpus":    map[string]any{"boot_vcpus": max(spec.VCPUs, 1), "max_vcpus": max(spec.VCPUs, 1)},
		"memory":  map[string]any{"size": int64(spec.MemoryMiB) << 20},
		"payload": map[string]any{"kernel": spec.Image.Kernel, "initramfs": spec.Image.Initramfs, "cmdline": kernelCmdline(spec, "ttyS0", "vsock")},
		"disks":   []any{map[string]any{"path": spec.Image.Rootfs, "readonly": true}},
		"serial":  map[string]any{"mode": "Tty"},
		"console": map[string]any{"mode": "Off"},
		"vsock":   map[string]any{"cid": 3, "socket": vsock},
		"rng":     map[string]any{"src": "/dev/urandom"},
	}
	if _, err := m.api.call(ctx, http.MethodPut, "vm.create", cfg); err != nil {
		m.Kill()
		return nil, err
	}
	if _, err := m.api.call(ctx, http.MethodPut, "vm.boot", nil); err != nil {
		m.Kill()
		return nil, fmt.Errorf("%w (%s)", err, m.p.describe())
	}
	if err := m.connectAgent(ctx, vsock); err != nil {
		m.Kill()
		return nil, err
	}
	return m, nil
}

// Restore implements Driver. The snapshot's config names the vsock socket
// of the VM it was taken from, which may still run: the fork gets a copy of
// the config pointing at its own socket (memory files are hard-linked).
func (c *CloudHypervisor) Restore(ctx context.Context, spec Spec, snapshotDir string) (Machine, error) {
	spec.WorkspaceMiB = 0
	m, vsock, err := c.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	fork := filepath.Join(spec.Dir, "snapshot")
	if err := forkSnapshot(snapshotDir, fork, vsock); err != nil {
		m.Kill()
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	if _, err := m.api.call(ctx, http.MethodPut, "vm.restore", map[string]any{"source_url": "file://" + fork}); err != nil {
		m.Kill()
		return nil, fmt.Errorf("restore snapshot: %w (%s)", err, m.p.describe())
	}
	if _, err := m.api.call(ctx, http.MethodPut, "vm.resume", nil); err != nil {
		m.Kill()
		return nil, err
	}
	if err := m.connectAgent(ctx, vsock); err != nil {
		m.Kill()
		return nil, err
	}
	return m, nil
}

// Attach implements Driver: it adopts the Cloud Hypervisor of spec's VM
// that an earlier plugin process started (API and vsock sockets are
// reached by path again; the agent takes the new vsock connection).
func (c *CloudHypervisor) Attach(ctx context.Context, spec Spec) (Machine, error) {
	p, err := adoptProc(spec.Dir, Marker(spec.ID))
	if err != nil {
		return nil, err
	}
	m := &chMachine{p: p, api: newCHAPI(filepath.Join(spec.Dir, "api.sock"))}
	if _, err := m.api.call(ctx, http.MethodGet, "vmm.ping", nil); err != nil {
		p.kill()
		return nil, fmt.Errorf("reconnect to VM %s: %w", spec.ID, err)
	}
	if err := m.connectAgent(ctx, filepath.Join(spec.Dir, "vsock.sock")); err != nil {
		p.kill()
		return nil, fmt.Errorf("reconnect to VM %s: %w", spec.ID, err)
	}
	return m, nil
}

func forkSnapshot(src, dst, vsock string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.Name() == "config.json" {
			b, err := os.ReadFile(s)
			if err != nil {
				return err
			}
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				return fmt.Errorf("snapshot config is corrupt: %w", err)
			}
			if v, ok := cfg["vsock"].(map[string]any); ok {
				v["socket"] = vsock
			}
			out, _ := json.Marshal(cfg)
			if err := os.WriteFile(d, out, 0o600); err != nil {
				return err
			}
			continue
		}
		if err := os.Link(s, d); err != nil {
			return fmt.Errorf("link snapshot file: %w", err)
		}
	}
	return nil
}

// connectAgent dials the hybrid vsock socket until the agent listens.
func (m *chMachine) connectAgent(ctx context.Context, sock string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := dialHybridVsock(sock, proto.VsockPort)
		if err == nil {
			m.agent = c
			return nil
		}
		if m.p.exited() {
			return fmt.Errorf("vm exited before its agent listened (%s)", m.p.describe())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("guest agent not reachable over vsock: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialHybridVsock(sock string, port int) (net.Conn, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, err
	}
	// Read the "OK <port>" line byte by byte: what follows is the stream.
	var line []byte
	b := make([]byte, 1)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, err := c.Read(b); err != nil {
			c.Close()
			return nil, err
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	_ = c.SetReadDeadline(time.Time{})
	if !strings.HasPrefix(string(line), "OK ") {
		c.Close()
		return nil, fmt.Errorf("hybrid vsock: %q", line)
	}
	return c, nil
}

func (m *chMachine) Agent() io.ReadWriteCloser { return m.agent }
func (m *chMachine) Done() <-chan struct{}     { return m.p.done }
func (m *chMachine) Describe() string          { return m.p.describe() }
func (m *chMachine) Pid() int                  { return m.p.pid }

func (m *chMachine) Kill() {
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = m.api.call(ctx, http.MethodPut, "vmm.shutdown", nil)
		cancel()
		m.p.kill()
		if m.agent != nil {
			m.agent.Close()
		}
	})
}

// Snapshot implements Machine: pause, vm.snapshot into dir, resume.
func (m *chMachine) Snapshot(ctx context.Context, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	if _, err := m.api.call(ctx, http.MethodPut, "vm.pause", nil); err != nil {
		return 0, err
	}
	_, serr := m.api.call(ctx, http.MethodPut, "vm.snapshot", map[string]any{"destination_url": "file://" + dir})
	if _, err := m.api.call(context.Background(), http.MethodPut, "vm.resume", nil); err != nil && serr == nil {
		serr = fmt.Errorf("resume after snapshot: %w", err)
	}
	if serr != nil {
		return 0, serr
	}
	var size int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	return size, nil
}
