package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/testenv"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// configureErr launches the plugin and returns what Configure says about
// config.
func configureErr(t *testing.T, bin, config string) error {
	t.Helper()
	_, err := configureErrPid(t, bin, config)
	return err
}

// configureErrPid is configureErr that also says which process the
// plugin was.
func configureErrPid(t *testing.T, bin, config string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := host.Launch(ctx, bin)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	defer p.Kill()
	return p.Pid(), p.Configure(ctx, &sdk.Config{JSON: []byte(config), StateDir: t.TempDir()})
}

func TestBadEnvironment(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	t.Run("dead_socket", func(t *testing.T) {
		// A socket file nobody listens on any more.
		sock := filepath.Join(t.TempDir(), "dead.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		for _, addr := range []string{sock, "/nonexistent/containerd.sock"} {
			err := configureErr(t, bin, fmt.Sprintf(`{"address": %q, "namespace": %q}`, addr, testenv.Namespace))
			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "containerd") {
				t.Fatalf("address %s: %v", addr, err)
			}
			t.Logf("%s: %v", addr, err)
		}
	})
	t.Run("missing_image", func(t *testing.T) {
		err := configureErr(t, bin, fmt.Sprintf(`{"namespace": %q, "image": "mcpruntime/missing:none", "build_image": false}`, testenv.Namespace))
		if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "make") {
			t.Fatalf("missing image: %v", err)
		}
		t.Log(err)
	})
	ctx, c := containerdClient(t)
	// An image that claims to be ours but holds no Python.
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "hello.txt"), []byte("not python"), 0o644)
	layer, err := image.WriteLayer(rootfs, filepath.Join(t.TempDir(), "layer.tar"))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{image.LabelRecipe: image.RecipeKey(append(append([]string{}, image.BasePackages...), image.DefaultExtraPackages...))}
	const corrupt = "mcpruntime/corrupt:test"
	img, err := image.Import(ctx, c, layer, image.ImageConfig{Name: corrupt, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ImageService().Delete(ctx, corrupt)
	t.Run("image_without_python", func(t *testing.T) {
		pid, err := configureErrPid(t, bin, fmt.Sprintf(`{"namespace": %q, "image": %q, "build_image": false}`, testenv.Namespace, corrupt))
		if err == nil || !strings.Contains(err.Error(), "/usr/bin/python3") || !strings.Contains(err.Error(), "rebuild") {
			t.Fatalf("session on an image without python: %v", err)
		}
		t.Log(err)
		assertNoContainersOf(t, c, ctx, strconv.Itoa(pid))
	})
	t.Run("image_missing_content", func(t *testing.T) {
		// Drop the unpacked rootfs and the layer blob: the image record
		// remains but cannot be unpacked any more.
		diffs, _ := img.RootFS(ctx)
		sn := c.SnapshotService("overlayfs")
		_ = sn.Remove(ctx, "osb-rootfs-"+strings.TrimPrefix(diffs[0].String(), "sha256:")[:16])
		_ = sn.Remove(ctx, diffs[0].String())
		if err := c.ContentStore().Delete(ctx, layer.Digest); err != nil {
			t.Fatalf("delete layer blob: %v", err)
		}
		err := configureErr(t, bin, fmt.Sprintf(`{"namespace": %q, "image": %q, "build_image": false}`, testenv.Namespace, corrupt))
		if err == nil || !strings.Contains(err.Error(), "rebuild") {
			t.Fatalf("image with missing content: %v", err)
		}
		t.Log(err)
	})
}

// assertNoContainersOf fails if containers of the plugin process pid are
// left in the test namespace (its owner id starts with its pid). Other
// plugins' containers are theirs: not counted.
func assertNoContainersOf(t *testing.T, c *client.Client, ctx context.Context, pid string) {
	t.Helper()
	ctrs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range ctrs {
		labels, _ := ctr.Labels(ctx)
		if id := labels["mcpruntime.opensandbox/instance"]; strings.HasPrefix(id, pid+"-") {
			t.Errorf("container %s (owner %s) leaked", ctr.ID(), id)
		}
	}
}

// TestCrashLeavesNothing kills the plugin with SIGKILL while it holds
// sessions and a warm pool, and checks that the next start removes every
// container, task and slot it left, and that a clean shutdown leaves none.
func TestCrashLeavesNothing(t *testing.T) {
	testenv.RequireContainerd(t)
	bin := buildPlugin(t)
	ctx, c := containerdClient(t)

	// No recovery grace: the session's container goes with the next start
	// (recover_test.go covers the grace).
	h := launch(t, bin, 2, testenv.ConfigJSONGrace("0s"))
	id := h.Session(t, sdk.Limits{})
	h.Expect(t, id, "_ = open('crash.txt', 'w').write('x')", "")
	inst, err := testenv.Instance(h.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool to fill", time.Minute, func() bool { return countOwned(t, c, ctx, inst) >= 3 })
	if err := syscall.Kill(-h.p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for !h.p.Exited() {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countOwned(t, c, ctx, inst); n == 0 {
		t.Fatal("a SIGKILLed plugin cannot clean up; expected leftovers before the restart")
	}
	slots, _ := filepath.Glob(filepath.Join(testenv.Slots, "osb-"+inst+"-*"))
	if len(slots) == 0 {
		t.Fatal("expected leftover slots before the restart")
	}

	// The next start sweeps in the background, right at Configure.
	h2 := launch(t, bin, 1, "")
	h2.ws, h2.Workspace = h.ws, h.ws
	t.Logf("leftovers of the killed plugin swept %v after the next start", waitGone(t, ctx, c, inst, 15*time.Second))
	id2 := h2.Session(t, sdk.Limits{})
	h2.Expect(t, id2, "print(open('crash.txt').read())", "x\n")

	// A clean shutdown removes everything it created.
	inst2, err := testenv.Instance(h2.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	h2.p.Kill()
	if left := leftovers(ctx, c, inst2); len(left) > 0 {
		t.Errorf("left after a clean shutdown: %v", left)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countOwned counts the containers of owner id.
func countOwned(t *testing.T, c *client.Client, ctx context.Context, id string) int {
	t.Helper()
	ctrs, err := c.Containers(ctx, fmt.Sprintf(`labels."mcpruntime.opensandbox/instance"==%q`, id))
	if err != nil {
		t.Fatal(err)
	}
	return len(ctrs)
}

// TestOneShimPerPlugin: the containers of one plugin process share one
// containerd shim (the group annotation), instead of a shim each.
func TestOneShimPerPlugin(t *testing.T) {
	testenv.RequireContainerd(t)
	h := launch(t, buildPlugin(t), 0, "")
	for range 3 {
		h.Expect(t, h.Session(t, sdk.Limits{}), "print('up')", "up\n")
	}
	// A shim is named after the first container it served; this plugin's
	// containers are osb-<owner id>-<n>.
	inst, err := testenv.Instance(h.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	pattern := fmt.Sprintf("containerd-shim-runc-v2 -namespace %s -id osb-%s-", testenv.Namespace, inst)
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	if n := len(strings.Fields(string(out))); n != 1 {
		t.Fatalf("%d shim processes for 3 containers of one plugin, want 1", n)
	}
}

// TestAnchorKeepsShim: without a warm pool, the anchor container keeps the
// plugin's shim running between sessions, so a cold start does not have to
// start one; a clean shutdown removes the anchor with everything else.
func TestAnchorKeepsShim(t *testing.T) {
	testenv.RequireContainerd(t)
	ctx, c := containerdClient(t)
	h := launch(t, buildPlugin(t), 0, "")
	inst, err := testenv.Instance(h.p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	pattern := fmt.Sprintf("containerd-shim-runc-v2 -namespace %s -id osb-%s-", testenv.Namespace, inst)
	shims := func() string {
		out, _ := exec.Command("pgrep", "-f", pattern).Output()
		return strings.TrimSpace(string(out))
	}
	id := h.Session(t, sdk.Limits{})
	h.Expect(t, id, "print('up')", "up\n")
	first := shims()
	if first == "" || strings.Contains(first, "\n") {
		t.Fatalf("shims of the plugin: %q, want one", first)
	}
	// ctx carries a containerd namespace, as the context of a caller that
	// talks to containerd itself would: the plugin must still delete the
	// container in its own namespace (checked by assertNoContainersOf).
	if err := h.p.DestroySession(ctx, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a shim without containers exits at once
	if now := shims(); now != first {
		t.Fatalf("shim %q after the last session ended, want %q still running", now, first)
	}
	h.Expect(t, h.Session(t, sdk.Limits{}), "print('again')", "again\n")
	if now := shims(); now != first {
		t.Fatalf("the next cold session runs under shim %q, want %q", now, first)
	}
	pid := fmt.Sprint(h.p.Pid())
	h.p.Kill()
	assertNoContainersOf(t, c, ctx, pid)
}
