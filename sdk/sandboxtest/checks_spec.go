package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// The checks of what a SessionSpec and the Configure contract promise
// beyond running code: environment, library mounts, cancellation, and
// configuration (every attribute of the spec, one Configure before any
// session, a second one that does not disturb live sessions).

// wrongValue is a JSON value of the wrong type for a config attribute type.
func wrongValue(typ string) any {
	switch typ {
	case sdk.TypeString, sdk.TypeDuration, sdk.TypeSize:
		return map[string]any{"not": "a " + typ}
	case sdk.TypeNumber:
		return "not a number"
	case sdk.TypeBool:
		return "not a bool"
	case sdk.TypeStringList:
		return 42
	case sdk.TypeStringMap:
		return []string{"not", "a", "map"}
	}
	return nil
}

// withAttribute is the suite's config with one attribute replaced.
func (s *Suite) withAttribute(name string, value any) (json.RawMessage, error) {
	cfg := map[string]any{}
	if len(s.opts.config) > 0 {
		if err := json.Unmarshal(s.opts.config, &cfg); err != nil {
			return nil, fmt.Errorf("the suite's config is not a JSON object: %w", err)
		}
	}
	cfg[name] = value
	return json.Marshal(cfg)
}

// checkConfigErrors runs before the suite's one valid Configure: a refused
// Configure leaves the plugin unconfigured, as the contract says, so the
// valid one after these is still the first that succeeds.
func checkConfigErrors(s *Suite) error {
	spec, err := s.Plugin.ConfigSpec(bg())
	if err != nil {
		return err
	}
	if len(spec.Attributes) == 0 {
		return skip("the config spec has no attributes")
	}
	var errs []error
	for _, a := range spec.Attributes {
		wrong := wrongValue(a.Type)
		if wrong == nil {
			continue // checkSchema reports unknown types
		}
		js, err := s.withAttribute(a.Name, wrong)
		if err != nil {
			return err
		}
		if err := s.Plugin.Configure(bg(), &sdk.Config{JSON: js, PoolSize: s.opts.poolSize, StateDir: s.opts.stateDir}); err == nil {
			s.configures++
			errs = append(errs, fmt.Errorf("config attribute %q (%s): Configure accepted the wrongly typed value %s", a.Name, a.Type, mustJSON(wrong)))
		}
	}
	return errors.Join(errs...)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkConfigure(s *Suite) error {
	if err := s.configure(bg()); err != nil {
		return fmt.Errorf("Configure with the suite's config %s: %w", clip(string(s.opts.config)), err)
	}
	return nil
}

// checkConfigureAgain holds backends to what sdk.Backend says of a second
// Configure: refused, or applied to sessions created afterwards, and
// sessions that exist keep running either way.
func checkConfigureAgain(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), id, "kept = 'before the second Configure'", ""); err != nil {
		return err
	}
	outcome := "accepted"
	if err := s.Plugin.Configure(bg(), s.config()); err != nil {
		outcome = "refused: " + err.Error()
	}
	if err := s.expectOK(bg(), id, "print(kept)", "before the second Configure\n"); err != nil {
		return fmt.Errorf("a second Configure (%s) broke session %s created before it: %w", outcome, id, err)
	}
	next, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return fmt.Errorf("after a second Configure (%s) no new session starts: %w", outcome, err)
	}
	if err := s.expectOK(bg(), next, "print('after the second Configure')", "after the second Configure\n"); err != nil {
		return fmt.Errorf("after a second Configure (%s): %w", outcome, err)
	}
	return nil
}

// Names of the variables checkEnv sets.
const (
	checkEnvName  = "MCPRT_CHECK_ENV"
	checkEnvName2 = "MCPRT_CHECK_ENV_2"
)

func checkEnv(s *Suite) error {
	want := map[string]string{
		checkEnvName:  fmt.Sprintf("value %d with spaces, = and ✓", s.seq.Load()),
		checkEnvName2: "second",
	}
	id, err := s.NewSessionSpec(bg(), &sdk.SessionSpec{Env: want})
	if err != nil {
		return err
	}
	names := []string{checkEnvName, checkEnvName2}
	code := "import os\nfor name in " + mustJSON(names) + ":\n    print(os.environ.get(name, '<unset>'))"
	verify := func(when string) error {
		out, err := s.Exec(bg(), id, code)
		if err != nil {
			return err
		}
		if !out.Result.OK() {
			return fmt.Errorf("reading os.environ%s failed: %s %q", when, out.Result.Message, clip(out.Stderr))
		}
		got := strings.Split(strings.TrimSuffix(out.Stdout, "\n"), "\n")
		for i, name := range names {
			v := "<no output>"
			if i < len(got) {
				v = got[i]
			}
			if v != want[name] {
				return fmt.Errorf("SessionSpec.Env variable %s not visible to code%s: os.environ has %q, want %q", name, when, v, want[name])
			}
		}
		return nil
	}
	if err := verify(""); err != nil {
		return err
	}
	// A restarted kernel is the same session: it gets the same environment.
	out, err := s.Exec(bg(), id, "import os\nos._exit(3)")
	if err != nil {
		return err
	}
	if out.Result.Error != sdk.ErrorKernelDied {
		return fmt.Errorf("os._exit(3): %+v", out.Result)
	}
	return verify(" after the kernel restarted")
}

// checkMountName is the package name under which checkMounts mounts its
// library below sdk.GuestLib.
const checkMountName = "mcprt_check_mount"

func checkMounts(s *Suite) error {
	src := filepath.Join(s.tmp, fmt.Sprintf("lib-%d", s.seq.Add(1)))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	value := fmt.Sprintf("mounted %d", s.seq.Load())
	module := fmt.Sprintf("VALUE = %q\n", value)
	if err := os.WriteFile(filepath.Join(src, "probe.py"), []byte(module), 0o644); err != nil {
		return err
	}
	// World-writable on the host: only the mount's read-only-ness may
	// refuse the writes below, not the sandbox user's permissions.
	if err := os.Chmod(src, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(src, "probe.py"), 0o666); err != nil {
		return err
	}
	target := sdk.GuestLib + "/" + checkMountName
	id, err := s.NewSessionSpec(bg(), &sdk.SessionSpec{Mounts: []sdk.Mount{{Source: src, Target: target, ReadOnly: true}}})
	if err != nil {
		return err
	}
	code := `import os
try:
    from ` + checkMountName + ` import probe
except Exception as e:
    print('IMPORT-FAILED', type(e).__name__, e)
    raise SystemExit(0)
print('VALUE', probe.VALUE)
d = os.path.dirname(os.path.abspath(probe.__file__))
for what, path, mode in (('created', os.path.join(d, 'written-by-sandbox.txt'), 'w'), ('appended to', probe.__file__, 'a')):
    try:
        with open(path, mode) as f:
            f.write('x')
        print('WROTE', what, path)
    except OSError as e:
        print('REFUSED', type(e).__name__)
`
	out, err := s.Exec(bg(), id, code)
	if err != nil {
		return err
	}
	if !out.Result.OK() {
		return fmt.Errorf("mount probe failed: %s %q", out.Result.Message, clip(out.Stderr))
	}
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out.Stdout), "\n") {
		switch word, rest, _ := strings.Cut(line, " "); word {
		case "IMPORT-FAILED":
			return fmt.Errorf("SessionSpec.Mounts: module %s.probe mounted at %s (read-only) not importable by code: %s", checkMountName, target, rest)
		case "VALUE":
			if rest != value {
				return fmt.Errorf("SessionSpec.Mounts: %s.probe.VALUE is %q, want %q (not the mounted directory)", checkMountName, rest, value)
			}
		case "WROTE":
			problems = append(problems, "code "+rest)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "probe.py" && e.Name() != "__pycache__" {
			problems = append(problems, "a file "+e.Name()+" appeared in the source directory")
		}
	}
	if got, err := os.ReadFile(filepath.Join(src, "probe.py")); err != nil || string(got) != module {
		problems = append(problems, fmt.Sprintf("the mounted probe.py changed on the host (%q, %v)", clip(string(got)), err))
	}
	if len(problems) > 0 {
		return fmt.Errorf("SessionSpec.Mounts: the read-only mount %s is writable: %s", target, strings.Join(problems, "; "))
	}
	return nil
}

// cancelGrace is how soon an Execute must return after its context is
// cancelled, and how soon the session must then run code again.
const cancelGrace = 15 * time.Second

func checkCancel(s *Suite) error {
	id, err := s.NewSession(bg(), sdk.Limits{})
	if err != nil {
		return err
	}
	if err := s.expectOK(bg(), id, "before = 'set'", ""); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(bg())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := s.Plugin.Execute(ctx, &sdk.ExecRequest{SessionID: id, Code: "print('looping', flush=True)\nwhile True:\n    pass"}, func(e sdk.Event) {
			if e.Kind == sdk.EventStdout {
				once.Do(func() { close(started) })
			}
		})
		done <- err
	}()
	// Cancel only once the loop runs: at its first output when the plugin
	// streams, else after a moment to start.
	wait := 2 * time.Second
	if s.Info.Capabilities.Streaming {
		wait = s.opts.execTimeout
	}
	select {
	case <-started:
	case err := <-done:
		return fmt.Errorf("the endless loop ended before it was cancelled: %v", err)
	case <-time.After(wait):
		if s.Info.Capabilities.Streaming {
			return fmt.Errorf("the loop printed nothing within %s", wait)
		}
	}
	cancel()
	cancelled := time.Now()
	select {
	case <-done:
	case <-time.After(cancelGrace):
		return fmt.Errorf("Execute had not returned %s after its context was cancelled: cancellation does not reach the running code", cancelGrace)
	}
	took := time.Since(cancelled)
	cctx, ccancel := context.WithTimeout(bg(), 2*cancelGrace)
	defer ccancel()
	out, err := s.Exec(cctx, id, "print(globals().get('before', '<lost>'))")
	if err != nil {
		return fmt.Errorf("the session did not run code within %s of a cancelled Execute (which returned after %s): cancellation did not stop the running code: %w", 2*cancelGrace, took.Round(time.Millisecond), err)
	}
	switch {
	case !out.Result.OK():
		return fmt.Errorf("after a cancelled Execute the session fails: %s (%s) %q", out.Result.Error, out.Result.Message, clip(out.Stderr))
	case out.Stdout == "set\n":
		return nil
	case out.Stdout == "<lost>\n" && out.Result.StateLost:
		return nil
	case out.Stdout == "<lost>\n":
		return errors.New("after a cancelled Execute the session's variables are gone but the next result does not report state_lost")
	}
	return fmt.Errorf("after a cancelled Execute: stdout %q", out.Stdout)
}

// checkEnforced is the common head of the limit checks.
func (s *Suite) checkEnforced(limit string) error {
	if !s.enforces(limit) {
		return skip("plugin does not declare that it enforces the %s limit (Capabilities.EnforcedLimits %v)", limit, s.Info.Capabilities.EnforcedLimits)
	}
	return nil
}
