// Package worker is the process that hosts one CPython-for-WASI instance
// running the sdk kernel. The plugin re-executes its own binary in worker
// mode for every kernel, so that a timeout can stop pure-Python code by
// killing the process, without the 2-4x slowdown wazero's in-process
// cancellation costs (see the README's measurements).
//
// The worker's stdin/stdout are the guest's stdin/stdout, i.e. the kernel's
// framed channel. File descriptor 3 is a control socket: the plugin sends one
// JSON line binding the guest's /workspace and /mcpruntime/lib to host
// directories (for a staged worker with those directories' mount trees as
// SCM_RIGHTS), and the worker answers "ok". A pooled worker starts before
// its session exists, which is why the binding comes late.
package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
)

// EnvVar holds the worker's Config as JSON; its presence selects worker mode.
const EnvVar = "MCPRUNTIME_WASM_WORKER"

// ControlFD is the worker's end of the control socket.
const ControlFD = 3

// FullFD is the write end of a pipe on which the worker writes a byte
// whenever the guest's workspace hits a full host file system (see
// guest.BindableFS.OnStorageFull): the guest sees EIO there, the plugin
// tells the caller why.
const FullFD = 4

// Config is what the plugin tells a worker.
type Config struct {
	// Engine is guest.EngineWazero or guest.EngineWasmtime.
	Engine string `json:"engine"`
	// Image, when set, is the pre-initialized python.wasm to resume
	// (guest.EnsureSnapshot), ImageKey its cache key.
	Image     string `json:"image,omitempty"`
	ImageKey  string `json:"image_key,omitempty"`
	Wasm      string `json:"wasm"`
	Lib       string `json:"lib"`
	CacheDir  string `json:"cache_dir"`
	KernelDir string `json:"kernel_dir"`
	EmptyDir  string `json:"empty_dir"`
	// StageDir, when set, is an empty directory the worker mounts its
	// staging root on (see stage): the worker runs in a mount namespace of
	// its own, so its instance starts before the binding. Unset (or when
	// the mount fails: no privilege), an engine without late binding waits
	// for the binding to instantiate.
	StageDir    string `json:"stage_dir,omitempty"`
	MemoryBytes int64  `json:"memory_bytes"`
}

// Binding is the control message: host directories for the guest mounts.
type Binding struct {
	Workspace string `json:"workspace"`
	Lib       string `json:"lib"`
	// Mounts are the library mounts Lib links to; an engine that cannot
	// follow Lib's links (wasmtime: they point out of it) mounts each.
	Mounts []sdk.LibMount `json:"mounts,omitempty"`
}

// GuestEnv is the guest's environment. It is fixed at instantiation, so it
// holds nothing session-specific; session variables are set by the plugin
// through the kernel once the worker is bound.
func GuestEnv() []string {
	return []string{
		"PYTHONHOME=" + guest.Prefix,
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"PYTHONIOENCODING=utf-8",
		"HOME=" + sdk.GuestWorkspace,
		"LANG=C.UTF-8",
		"MCPRUNTIME_LIB=" + sdk.GuestLib,
		"MCPRUNTIME_WORKSPACE=" + sdk.GuestWorkspace,
	}
}

// Main runs the worker and returns its exit status: the guest's.
func Main() int {
	// The plugin decides when a worker dies; a Ctrl-C meant for the core
	// must not kill kernels behind its back.
	signal.Ignore(syscall.SIGINT)
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(EnvVar)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "wasm worker: bad %s: %v\n", EnvVar, err)
		return 70
	}
	os.Unsetenv(EnvVar)
	ctx := context.Background()
	eng, err := guest.NewEngine(ctx, guest.EngineOptions{Name: cfg.Engine, CacheDir: cfg.CacheDir, MemoryBytes: cfg.MemoryBytes})
	if err != nil {
		fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
		return 70
	}
	run := guest.RunOptions{
		// -s: no user site; -B: no .pyc written into the workspace. The
		// kernel is imported, so its byte-code (see the backend's
		// compileKernel) is used.
		Args:      []string{"-s", "-B", "-c", kernel.Bootstrap(guest.KernelMount)},
		Env:       GuestEnv(),
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		StdlibDir: cfg.Lib,
		KernelDir: cfg.KernelDir,
	}
	wasm, key := cfg.Wasm, ""
	if cfg.Image != "" {
		wasm, key, run.Entry = cfg.Image, cfg.ImageKey, guest.ResumeEntry
	}
	mod, err := eng.Load(ctx, wasm, key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
		return 70
	}
	ctrl := os.NewFile(ControlFD, "control")
	if eng.LateBinding() {
		workspace := guest.NewBindableFS(cfg.EmptyDir, true)
		workspace.OnStorageFull(reportFull)
		lib := guest.NewBindableFS(cfg.EmptyDir, true)
		go serveControl(ctrl, workspace, lib)
		run.Mounts = []guest.Mount{
			{FS: workspace, Guest: sdk.GuestWorkspace},
			{FS: lib, Guest: sdk.GuestLib},
		}
	} else if st := openStage(cfg.StageDir); st != nil {
		// The kernel resumes now, on the staging root; the binding mounts
		// the session's directories below it while the kernel waits.
		go func() {
			if _, err := awaitBinding(ctrl, st.bind); err != nil {
				fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
			}
		}()
		run.Mounts = st.mounts()
	} else {
		// The instance needs its session's directories to start: the
		// worker is ready (engine up, module loaded) and says so as the
		// kernel would, then waits for its binding. The kernel's own
		// ready frame follows once it runs; the host skips it.
		if err := kernel.WriteFrame(os.Stdout, &kernel.Frame{Type: "ready", Pid: os.Getpid(), Python: "3.13", Platform: "wasi"}); err != nil {
			fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
			return 70
		}
		b, err := awaitBinding(ctrl, nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
			return 70
		}
		run.Mounts = directMounts(b)
	}
	code, err := mod.Run(ctx, run)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wasm worker: %v\n", err)
	}
	return code
}

// openStage mounts the staging root on dir, or says why not on stderr (the
// kernel's tail in the plugin's log) and returns nil: the worker then
// instantiates at its binding.
func openStage(dir string) *stage {
	if dir == "" {
		return nil
	}
	st, err := newStage(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wasm worker: %v; the instance starts at the binding\n", err)
		return nil
	}
	return st
}

// awaitBinding reads the one binding of a worker whose engine mounts
// directories at instantiation, applies it (apply may be nil), answers it,
// and answers every later one with an error in the background (such a
// worker is never re-bound).
func awaitBinding(f *os.File, apply func(*Binding, []int) error) (*Binding, error) {
	r := &lineReader{f: f}
	line, fds, err := r.readLine()
	if err != nil {
		closeFDs(fds)
		return nil, fmt.Errorf("control: %w", err)
	}
	b, err := checkBinding(line, fds, apply)
	closeFDs(fds)
	if err != nil {
		fmt.Fprintf(f, "error: %v\n", err)
		return nil, fmt.Errorf("control: %w", err)
	}
	fmt.Fprintln(f, "ok")
	go func() {
		defer f.Close()
		for {
			_, fds, err := r.readLine()
			closeFDs(fds)
			if err != nil {
				return
			}
			fmt.Fprintln(f, "error: this worker is bound already")
		}
	}()
	return b, nil
}

// checkBinding decodes a binding and applies it: apply, when set, gets the
// mount trees that came with it; else its directories must exist here.
func checkBinding(line []byte, fds []int, apply func(*Binding, []int) error) (*Binding, error) {
	var b Binding
	if err := json.Unmarshal(line, &b); err != nil {
		return nil, err
	}
	if apply != nil {
		return &b, apply(&b, fds)
	}
	for _, dir := range []string{b.Workspace, b.Lib} {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("bind %s: not a directory", dir)
		}
	}
	return &b, nil
}

// directMounts are a binding's directories as mounts fixed at
// instantiation: the workspace, the session's import root and each library
// mount at its own guest path (the root's links lead out of it, which the
// engine's WASI refuses to follow).
func directMounts(b *Binding) []guest.Mount {
	ms := []guest.Mount{
		{Dir: b.Workspace, Guest: sdk.GuestWorkspace},
		{Dir: b.Lib, ReadOnly: true, Guest: sdk.GuestLib},
	}
	for _, m := range b.Mounts {
		ms = append(ms, guest.Mount{Dir: m.Source, ReadOnly: true, Guest: sdk.GuestLib + "/" + m.Rel})
	}
	return ms
}

// reportFull tells the plugin that a workspace write found the host's file
// system full. The pipe is non-blocking: when the plugin has not read the
// previous bytes yet, it knows already.
func reportFull() {
	_, _ = syscall.Write(FullFD, []byte{1})
}

func serveControl(f *os.File, workspace, lib *guest.BindableFS) {
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(os.Stderr, "wasm worker: control: %v\n", err)
			}
			return
		}
		var b Binding
		if err := json.Unmarshal(line, &b); err != nil {
			fmt.Fprintf(f, "error: %v\n", err)
			continue
		}
		// A mount that could not be bound answers the guest with its errno;
		// the host must hear of it too, and fail the session's set-up.
		if err := workspace.Bind(b.Workspace, false); err != nil {
			fmt.Fprintf(f, "error: bind /workspace: %v\n", err)
			continue
		}
		if err := lib.Bind(b.Lib, true); err != nil {
			fmt.Fprintf(f, "error: bind the library mounts: %v\n", err)
			continue
		}
		fmt.Fprintln(f, "ok")
	}
}
