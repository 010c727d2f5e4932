package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Checks lists the conformance checks in the order they run. Later checks
// rely on earlier ones (configure before sessions, restart last).
func Checks() []Check {
	return []Check{
		{"handshake", "the plugin speaks the current protocol version", checkHandshake},
		{"info", "Info names the plugin and declares its capabilities and enforced limits", checkInfo},
		{"config_schema", "the config spec is well formed", checkSchema},
		{"config_errors", "every attribute of the config spec refuses a wrongly typed value", checkConfigErrors},
		{"configure", "the suite's config is accepted by the one Configure before any session", checkConfigure},
		{"exec_output", "stdout of code comes back exactly, with exit status 0", checkExecOutput},
		{"exit_codes", "sys.exit(n) sets the exit status", checkExitCodes},
		{"stderr", "stderr is a separate stream", checkStderr},
		{"exceptions", "exceptions and syntax errors report type, message and traceback", checkExceptions},
		{"state_persists", "variables survive between executions of a session", checkStatePersists},
		{"sessions_isolated", "a session cannot see another session's variables", checkIsolation},
		{"env", "the variables of SessionSpec.Env are in os.environ", checkEnv},
		{"mounts", "a library mount below " + sdk.GuestLib + " is importable and read-only", checkMounts},
		{"workspace_files", "files written in the workspace reach the host and the next session", checkWorkspace},
		{"disk_full", "a write to a workspace whose file system is full fails in the code with ENOSPC (or EIO with a result that says ENOSPC)", checkDiskFull},
		{"streaming", "output arrives while the code is still running", checkStreaming},
		{"display", "display() and a rich last expression stream mime bundles (HTML, PNG bytes) in order with stdout", checkDisplay},
		{"libraries", "every library the plugin declares is importable", checkLibraries},
		{"timeout", "an infinite loop is stopped at the timeout and the session stays usable", checkTimeout},
		{"cancel", "cancelling a running Execute returns promptly; the session works or reports state_lost", checkCancel},
		{"output_cap", "100 MB of output is capped and reported as truncated", checkOutputCap},
		{"huge_line", "a 20 MB single line is capped", checkHugeLine},
		{"large_code", "6 MB of code (data pasted into a cell) runs", checkLargeCode},
		{"memory_limit", "allocating more than the memory limit (and less than the host has) fails cleanly; the session recovers (when declared)", checkMemory},
		{"pids_limit", "forking beyond the pids limit is refused (when declared)", checkPids},
		{"cpu_limit", "a busy loop under a CPU limit gets that share of a CPU (when declared)", checkCPU},
		{"kernel_exit", "os._exit kills only the kernel; the error says so; the session recovers", checkKernelExit},
		{"concurrent_sessions", "sessions execute in parallel without mixing output", checkConcurrent},
		{"host_calls", "ask_llm and tool calls reach the core with the session's token; a revoked token is refused", checkHostCalls},
		{"host_calls_concurrent", "host calls of asyncio tasks (and of threads, where the sandbox has them) are in flight at once", checkHostCallsConcurrent},
		{"host_call_results", "tool results with images, audio and resources arrive as bytes; failures carry their code", checkHostCallResults},
		{"snapshots", "snapshot and restore fork a session (when declared)", checkSnapshots},
		{"configure_again", "a second Configure is refused or applies to new sessions; existing sessions keep working", checkConfigureAgain},
		{"destroy", "destroyed sessions are gone; duplicate ids are refused", checkDestroy},
		{"health", "Health reports the plugin healthy", checkHealth},
		{"restart", "a killed plugin can be launched again and serves", checkRestart},
	}
}

func bg() context.Context { return context.Background() }

func checkHandshake(s *Suite) error {
	if v := s.Plugin.ProtocolVersion(); v != sdk.ProtocolVersion {
		return fmt.Errorf("negotiated protocol %d, want %d", v, sdk.ProtocolVersion)
	}
	return nil
}

func checkInfo(s *Suite) error {
	info, err := s.Plugin.Info(bg())
	if err != nil {
		return err
	}
	s.Info = info
	switch {
	case info.Name == "" || info.Version == "":
		return fmt.Errorf("info lacks name or version: %+v", info)
	case !slices.Contains(info.ProtocolVersions, sdk.ProtocolVersion):
		return fmt.Errorf("protocol versions %v lack %d", info.ProtocolVersions, sdk.ProtocolVersion)
	case !slices.Contains(info.Capabilities.Languages, "python"):
		return fmt.Errorf("languages %v lack python", info.Capabilities.Languages)
	}
	switch info.Capabilities.Isolation {
	case sdk.IsolationProcess, sdk.IsolationWasm, sdk.IsolationContainer, sdk.IsolationMicroVM:
	default:
		return fmt.Errorf("unknown isolation %q", info.Capabilities.Isolation)
	}
	seen := map[string]bool{}
	for _, l := range info.Capabilities.EnforcedLimits {
		if !slices.Contains(knownLimits, l) || seen[l] {
			return fmt.Errorf("enforced limit %q unknown or repeated (known: %v)", l, knownLimits)
		}
		seen[l] = true
	}
	return nil
}

var knownLimits = []string{sdk.LimitTimeout, sdk.LimitMemory, sdk.LimitOutput, sdk.LimitCPU, sdk.LimitPids}

// enforces reports whether the plugin declares that it enforces limit.
func (s *Suite) enforces(limit string) bool {
	return s.Info != nil && slices.Contains(s.Info.Capabilities.EnforcedLimits, limit)
}

var knownTypes = []string{sdk.TypeString, sdk.TypeNumber, sdk.TypeBool, sdk.TypeStringList, sdk.TypeStringMap, sdk.TypeDuration, sdk.TypeSize}

func checkSchema(s *Suite) error {
	spec, err := s.Plugin.ConfigSpec(bg())
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range spec.Attributes {
		if a.Name == "" || seen[a.Name] {
			return fmt.Errorf("attribute name %q empty or repeated", a.Name)
		}
		seen[a.Name] = true
		if !slices.Contains(knownTypes, a.Type) {
			return fmt.Errorf("attribute %q has unknown type %q", a.Name, a.Type)
		}
	}
	return nil
}

func checkExecOutput(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "print(6*7)")
	if err != nil {
		return err
	}
	if !out.Result.OK() || out.Stdout != "42\n" || out.Result.Duration <= 0 {
		return fmt.Errorf("print(6*7): ok=%v stdout=%q duration=%s (%s)", out.Result.OK(), out.Stdout, out.Result.Duration, out.Result.Message)
	}
	return s.expectOK(bg(), id, "print('héllo ✓')", "héllo ✓\n")
}

func checkExitCodes(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	for code, want := range map[string]int{"import sys; sys.exit(3)": 3, "import sys; sys.exit(0)": 0, "raise SystemExit(7)": 7} {
		out, err := s.Exec(bg(), id, code)
		if err != nil {
			return err
		}
		if out.Result.ExitCode != want {
			return fmt.Errorf("%q: exit %d, want %d", code, out.Result.ExitCode, want)
		}
		if want != 0 && out.Result.Error != sdk.ErrorExit {
			return fmt.Errorf("%q: error kind %q, want %q", code, out.Result.Error, sdk.ErrorExit)
		}
	}
	return s.expectOK(bg(), id, "print('after exit')", "after exit\n")
}

func checkStderr(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)")
	if err != nil {
		return err
	}
	if out.Stdout != "to-out\n" || out.Stderr != "to-err\n" {
		return fmt.Errorf("stdout %q stderr %q", out.Stdout, out.Stderr)
	}
	return nil
}

func checkExceptions(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "def f():\n    return 1/0\nf()")
	if err != nil {
		return err
	}
	r := out.Result
	if r.ExitCode != 1 || r.Error != sdk.ErrorException || r.Exception == nil || r.Exception.Type != "ZeroDivisionError" {
		return fmt.Errorf("1/0: %+v exception %+v", r, r.Exception)
	}
	if !strings.Contains(r.Exception.Traceback, "in f") || !strings.Contains(out.Stderr, "ZeroDivisionError") {
		return fmt.Errorf("traceback %q / stderr %q lack the failing frame", r.Exception.Traceback, out.Stderr)
	}
	out, err = s.Exec(bg(), id, "def broken(:\n    pass")
	if err != nil {
		return err
	}
	if out.Result.Error != sdk.ErrorSyntax || out.Result.ExitCode == 0 || !strings.Contains(out.Result.Message, "line 1") {
		return fmt.Errorf("syntax error: %+v", out.Result)
	}
	return nil
}

func checkStatePersists(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), id, "x = 41\ndef inc(v):\n    return v + 1", ""); err != nil {
		return err
	}
	return s.expectOK(bg(), id, "print(inc(x))", "42\n")
}

func checkIsolation(s *Suite) error {
	a, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	b, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), a, "secret = 'a-only'", ""); err != nil {
		return err
	}
	return s.expectOK(bg(), b, "print('secret' in globals())", "False\n")
}

func checkWorkspace(s *Suite) error {
	a, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), a, "with open('conformance.txt', 'w') as f:\n    f.write('from the sandbox')", ""); err != nil {
		return err
	}
	got, err := os.ReadFile(filepath.Join(s.Workspace, "conformance.txt"))
	if err != nil || string(got) != "from the sandbox" {
		return fmt.Errorf("file on the host after the exec: %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(s.Workspace, "from-host.txt"), []byte("from the host"), 0o644); err != nil {
		return err
	}
	b, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	return s.expectOK(bg(), b, "print(open('conformance.txt').read(), open('from-host.txt').read(), sep='|')", "from the sandbox|from the host\n")
}

func checkStreaming(s *Suite) error {
	if !s.Info.Capabilities.Streaming {
		return skip("plugin does not declare streaming")
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	start := time.Now()
	out, err := s.Exec(bg(), id, "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')")
	if err != nil {
		return err
	}
	end := time.Now()
	if out.Stdout != "first\nsecond\n" {
		return fmt.Errorf("stdout %q", out.Stdout)
	}
	if out.FirstOutput.IsZero() || end.Sub(out.FirstOutput) < time.Second {
		return fmt.Errorf("first output arrived %s after start, the exec ended %s after start: output was not streamed", out.FirstOutput.Sub(start), end.Sub(start))
	}
	return nil
}

func checkTimeout(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), id, "before = 'set'", ""); err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "while True:\n    pass")
	if err != nil {
		return err
	}
	if out.Result.Error != sdk.ErrorTimeout || out.Result.ExitCode != 124 || out.Result.Message == "" {
		return fmt.Errorf("infinite loop: %+v", out.Result)
	}
	want := "set\n"
	if out.Result.StateLost {
		want = "False\n"
		return s.expectOK(bg(), id, "print('before' in globals())", want)
	}
	return s.expectOK(bg(), id, "print(before)", want)
}

func checkOutputCap(s *Suite) error {
	const limit = 64 << 10
	id, err := s.NewSession(bg(), sdk.Limits{OutputBytes: limit})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "line = 'x' * 99_999\nfor _ in range(1000):\n    print(line)")
	if err != nil {
		return err
	}
	if !out.Result.OutputTruncated || len(out.Stdout)+len(out.Stderr) > limit {
		return fmt.Errorf("100 MB of output: truncated=%v, %d bytes came back (limit %d)", out.Result.OutputTruncated, len(out.Stdout)+len(out.Stderr), limit)
	}
	if len(out.Stdout) < limit/2 {
		return fmt.Errorf("only %d bytes of output kept, want close to the %d limit", len(out.Stdout), limit)
	}
	return s.expectOK(bg(), id, "print('still here')", "still here\n")
}

func checkHugeLine(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{OutputBytes: 4096})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "print('y' * 20_000_000)")
	if err != nil {
		return err
	}
	if !out.Result.OutputTruncated || len(out.Stdout) > 4096 || !strings.HasPrefix(out.Stdout, "yyyy") {
		return fmt.Errorf("huge line: truncated=%v len=%d", out.Result.OutputTruncated, len(out.Stdout))
	}
	return nil
}

func checkLargeCode(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	code := "data = '" + strings.Repeat("0123456789", 600_000) + "'\nprint(len(data))"
	return s.expectOK(bg(), id, code, "6000000\n")
}

func checkKernelExit(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), id, "import os\nos._exit(9)")
	if err != nil {
		return err
	}
	r := out.Result
	if r.Error != sdk.ErrorKernelDied || r.ExitCode != 9 || !r.StateLost || r.Message == "" {
		return fmt.Errorf("os._exit(9): %+v", r)
	}
	return s.expectOK(bg(), id, "print('fresh kernel')", "fresh kernel\n")
}

func checkConcurrent(s *Suite) error {
	const n = 4
	ids := make([]string, n)
	for i := range ids {
		id, err := s.NewSession(bg(), sdk.Limits{})
		if err != nil {
			return err
		}
		ids[i] = id
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := fmt.Sprintf("import time\nfor k in range(5):\n    print(%d)\n    time.sleep(0.02)", i)
			errs[i] = s.expectOK(bg(), id, code, strings.Repeat(fmt.Sprintf("%d\n", i), 5))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func checkHostCalls(s *Suite) error {
	if !s.Info.Capabilities.HostCalls {
		return skip("plugin does not declare host calls")
	}
	a, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	b, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	out, err := s.Exec(bg(), a, "print(ask_llm('ping'))")
	if err != nil {
		return err
	}
	if !out.Result.OK() || out.Stdout != "pong: ping\n" {
		return fmt.Errorf("ask_llm('ping'): %q %q %s", out.Stdout, out.Stderr, out.Result.Message)
	}
	if len(out.Notices) != 1 || out.Notices[0].Method != "ask_llm" {
		return fmt.Errorf("host call notices %+v", out.Notices)
	}
	if err := s.expectOK(bg(), b, "import mcpruntime\nprint(mcpruntime.call_tool('files', 'stat', {'path': 'b'})['path'])", "b\n"); err != nil {
		return err
	}
	s.mu.Lock()
	calls := append([]hostCall(nil), s.calls...)
	s.mu.Unlock()
	var sawA, sawB bool
	for _, c := range calls {
		sawA = sawA || (c.session == a && c.method == "ask_llm" && c.arg == "ping")
		sawB = sawB || (c.session == b && c.method == "call_tool" && c.arg == "files.stat")
		if (c.session == a && c.method != "ask_llm") || (c.session == b && c.method != "call_tool") {
			return fmt.Errorf("host call routed to the wrong session: %+v", c)
		}
	}
	if !sawA || !sawB {
		return fmt.Errorf("host calls not seen on their sessions: %+v", calls)
	}
	s.Plugin.RevokeHost(a)
	out, err = s.Exec(bg(), a, "import mcpruntime\ntry:\n    ask_llm('again')\nexcept mcpruntime.HostCallError as e:\n    print('refused:', e)")
	if err != nil {
		return err
	}
	if !out.Result.OK() || !strings.Contains(out.Stdout, "refused:") || !strings.Contains(out.Stdout, sdk.ErrInvalidToken.Error()) {
		return fmt.Errorf("a call with a revoked token was not refused: %q %q", out.Stdout, out.Stderr)
	}
	return nil
}

func checkSnapshots(s *Suite) error {
	if !s.Info.Capabilities.Snapshots {
		if _, err := s.Plugin.Snapshot(bg(), "none"); !errors.Is(err, sdk.ErrNotSupported) && !errors.Is(err, sdk.ErrSessionNotFound) {
			return fmt.Errorf("Snapshot without the capability: %v, want ErrNotSupported", err)
		}
		return skip("plugin does not declare snapshots")
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), id, "counter = 1", ""); err != nil {
		return err
	}
	snap, err := s.Plugin.Snapshot(bg(), id)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	forks := make([]string, 2)
	for i := range forks {
		forks[i] = fmt.Sprintf("%s-fork%d", id, i)
		spec := &sdk.SessionSpec{ID: forks[i], Workspace: s.Workspace, Limits: sdk.Limits{Timeout: s.opts.execTimeout}, Host: &suiteHost{s: s, session: forks[i]}}
		if err := s.Plugin.Restore(bg(), snap.ID, spec); err != nil {
			return fmt.Errorf("restore fork %d: %w", i, err)
		}
		s.created = append(s.created, forks[i])
	}
	if err := s.expectOK(bg(), id, "counter += 100; print(counter)", "101\n"); err != nil {
		return err
	}
	if err := s.expectOK(bg(), forks[0], "counter += 1; print(counter)", "2\n"); err != nil {
		return err
	}
	return s.expectOK(bg(), forks[1], "counter += 2; print(counter)", "3\n")
}

func checkDestroy(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	err = s.Plugin.CreateSession(bg(), &sdk.SessionSpec{ID: id, Workspace: s.Workspace})
	if !errors.Is(err, sdk.ErrSessionExists) {
		return fmt.Errorf("duplicate session id: %v, want ErrSessionExists", err)
	}
	if err := s.Plugin.DestroySession(bg(), id); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if _, err := s.Exec(bg(), id, "print(1)"); !errors.Is(err, sdk.ErrSessionNotFound) {
		return fmt.Errorf("exec in a destroyed session: %v, want ErrSessionNotFound", err)
	}
	if err := s.Plugin.DestroySession(bg(), id); !errors.Is(err, sdk.ErrSessionNotFound) {
		return fmt.Errorf("second destroy: %v, want ErrSessionNotFound", err)
	}
	return nil
}

func checkHealth(s *Suite) error {
	h, err := s.Plugin.Health(bg())
	if err != nil {
		return err
	}
	if !h.Healthy {
		return fmt.Errorf("unhealthy: %s", h.Message)
	}
	return nil
}

func checkRestart(s *Suite) error {
	if s.InProcess() {
		return skip("the backend is served in process: there is no plugin process to kill (run the suite against the binary for this check)")
	}
	old := s.Plugin
	if err := syscall.Kill(-old.Pid(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill plugin: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !old.Exited() {
		if time.Now().After(deadline) {
			return errors.New("plugin still running 10s after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := old.Info(bg()); err == nil {
		return errors.New("a killed plugin still answered")
	}
	old.Kill()
	s.created = nil
	if err := s.launch(bg()); err != nil {
		return fmt.Errorf("relaunch: %w", err)
	}
	if err := s.configure(bg()); err != nil {
		return fmt.Errorf("configure after relaunch: %w", err)
	}
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	return s.expectOK(bg(), id, "print('restarted')", "restarted\n")
}
