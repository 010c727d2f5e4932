package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console tests drive the real console in headless Chromium (Debian's
// chromium, installed by `make deps`) against `mcpruntime serve` with the
// hostpython backend and a scripted model.
//
// MCPRUNTIME_TEST_ARTEFACTS names where screenshots of the failing page go
// (default: a directory under the system temp dir, printed);
// MCPRUNTIME_CONSOLE_SCREENSHOTS=DIR writes a screenshot of every page
// there (docs/images for the README).

// chromiumPath finds the browser; without one the test skips, except
// under CI=true, where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (make deps installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (make deps installs it)")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t        *testing.T
	ctx      context.Context
	artefact string
	shots    string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	// Without these flags Chromium probes the network at start and, on a
	// machine without internet, hangs.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, shots: os.Getenv("MCPRUNTIME_CONSOLE_SCREENSHOTS")}
	b.artefact = os.Getenv("MCPRUNTIME_TEST_ARTEFACTS")
	if b.artefact == "" {
		b.artefact = filepath.Join(os.TempDir(), "mcpruntime-console-artefacts")
	}
	// The first action starts the browser, which lives as long as that
	// action's context: it gets the tab's own context, cancelled by a
	// timer if the start hangs.
	hung := time.AfterFunc(60*time.Second, cancel)
	err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	hung.Stop()
	if err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot(filepath.Join(b.artefact, strings.ReplaceAll(t.Name(), "/", "_")+"-failure.png"))
			t.Logf("screenshot of the failing page in %s", b.artefact)
		}
		cancel()
		cancelAlloc()
	})
	return b
}

// do runs actions with a deadline; a failure stops the test (with a
// screenshot, see newBrowser).
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// wait polls a JavaScript expression until it is truthy and returns its
// value decoded into T.
func wait[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	var v T
	var err error
	// Right after a navigation the page's JavaScript context can be
	// replaced under a call ("Cannot find context"): that call is retried.
	for try := 0; try < 5; try++ {
		v, err = chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(55*time.Second), chromedp.WithPollingInterval(10*time.Millisecond)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.fail("waiting for %s (%s): %v", what, expr, err)
	}
	return v
}

// fail stops the test with a screenshot of the page and its text in the
// artefact dir.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	name := filepath.Join(b.artefact, strings.ReplaceAll(b.t.Name(), "/", "_"))
	b.screenshot(name + ".png")
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`)); err == nil {
		_ = os.WriteFile(name+".txt", []byte(text), 0o644)
		b.t.Logf("the page (%s.png):\n%.1500s", name, text)
	}
	b.t.Fatalf(format, args...)
}

// waitTrue polls expr until it is truthy.
func waitTrue(b *browser, what, expr string) {
	b.t.Helper()
	wait[bool](b, what, "!!("+expr+")")
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	var v T
	var err error
	for try := 0; try < 5; try++ {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// open loads url as a new document (not a hash change).
func (b *browser) open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate("about:blank"), chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

func (b *browser) screenshot(path string) { b.capture(path, chromedp.FullScreenshot(100)) }

func (b *browser) capture(path string, how chromedp.Action[[]byte]) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, how)
	if err == nil {
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		b.t.Logf("screenshot %s: %v", path, err)
	}
}

// shot keeps a picture of the page for the README when asked to.
func (b *browser) shot(name string) {
	if b.shots != "" {
		b.capture(filepath.Join(b.shots, "console-"+name+".png"), chromedp.CaptureScreenshot())
	}
}

// view waits until the console has drawn view name.
func (b *browser) view(name string) {
	b.t.Helper()
	waitTrue(b, "view "+name, fmt.Sprintf(`document.body.dataset.view === %q && performance.getEntriesByName('rendered:%s').length > 0`, name, name))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The console in a real browser: a cell streams, an agent run's steps
// appear live, its replay shows the workspace diff, a fork from step 1
// has step 1's variables and files, a skill is deleted, and pages of 500
// sessions and of 200 steps load in under a second.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	f := startConsoleFixture(t, agentScript(), func(ws string) { seedReplay(t, ws, 500, 200) })

	t.Run("cell streams", func(t *testing.T) {
		b.t = t
		b.open(f.base + "/#/sessions")
		b.view("sessions")
		b.do("new session", chromedp.Click(chromedp.CSS("#new-session")))
		b.view("session")
		code := "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"
		b.do("type and run", chromedp.SetValue(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#run")))
		type seen struct {
			Done bool
			Text string
		}
		first := wait[seen](b, "the first line", `(() => { const t = document.querySelector('#out').textContent;
			return t.includes('line 0') && {done: !!document.querySelector('#exit') || t.includes('line 4'), text: t}; })()`)
		if first.Done {
			t.Fatalf("the first line appeared only when the cell ended: %q", first.Text)
		}
		waitTrue(b, "the cell's end", `!!document.querySelector('#exit') && document.querySelector('#exit').textContent === 'exit 0' && document.querySelector('#out').textContent.includes('line 4')`)
		// An HTML output renders in a sandboxed frame, never in the page.
		html := "from IPython.display import display, HTML\ndisplay(HTML('<table><tr><th>name</th><th>n</th></tr><tr><td>alpha</td><td>1</td></tr></table><b id=\"injected\">bold</b><script>parent.document.title=\"owned\"</script>'))\nx = 7"
		b.do("run an HTML output", chromedp.SetValue(chromedp.CSS("#code"), html), chromedp.Click(chromedp.CSS("#run")))
		waitTrue(b, "the HTML output", `!!document.querySelector('#outputs iframe.html-output') && !!document.querySelector('#exit')`)
		if got := eval[string](b, `[document.querySelector('#outputs iframe').getAttribute('sandbox'), !!document.getElementById('injected'), document.title].join('|')`); got != "|false|mcpruntime console" {
			t.Fatalf("HTML output: sandbox attribute, injected, title = %s", got)
		}
		waitTrue(b, "the variables", `document.querySelector('#variables') && document.querySelector('#variables').textContent.includes('x')`)
		b.shot("session")
	})

	var session string
	t.Run("agent run live", func(t *testing.T) {
		b.t = t
		b.open(f.base + "/#/runs")
		b.view("runs")
		b.do("start a run", chromedp.SetValue(chromedp.CSS("#task"), "keep notes and change them"), chromedp.Click(chromedp.CSS("#start-run")))
		// The first step is on screen while the run waits for the model.
		live := wait[string](b, "the first step while running", `document.querySelectorAll('#run-steps .step-card').length >= 1 && document.querySelector('#run-status').textContent`)
		if live != "running" {
			t.Fatalf("the first step appeared only when the run was %s", live)
		}
		waitTrue(b, "the run's end", `document.querySelector('#run-status') && document.querySelector('#run-status').textContent === 'done'`)
		if n := eval[int](b, `document.querySelectorAll('#run-steps .step-card').length`); n != 2 {
			b.fail("%d steps on screen, want 2", n)
		}
		// Step 2's HTML output comes back from the replay store, framed.
		waitTrue(b, "step 2's HTML output", `document.querySelector('#run-steps .step-card[data-step="2"] iframe.html-output[sandbox=""]')`)
		if a := eval[string](b, `document.querySelector('#answer').textContent`); !strings.Contains(a, "x is 42") {
			t.Fatalf("answer %q", a)
		}
		session = eval[string](b, `document.querySelector('#run-replay').textContent`)
		b.shot("run")
	})

	t.Run("replay diff and fork", func(t *testing.T) {
		b.t = t
		if session == "" {
			t.Skip("no run")
		}
		b.do("open the replay", chromedp.Click(chromedp.CSS("#run-replay")))
		b.view("replay")
		step := func(firstLine string) int {
			return wait[int](b, "the step "+firstLine, fmt.Sprintf(`(() => { const n = [...document.querySelectorAll('#timeline .step')].find((n) => n.textContent.includes(%s)); return n ? Number(n.dataset.step) : 0; })()`, jsString(firstLine)))
		}
		one, two := step("x = 41"), step("x = 42")
		if one != 1 || two != 2 {
			t.Fatalf("the run's steps are %d and %d in the replay, want 1 and 2", one, two)
		}
		b.do("select step 2", chromedp.Click(chromedp.CSS(`#timeline .step[data-step="2"]`)))
		diff := wait[string](b, "the diff of step 2", `document.querySelector('#diff [data-path="new.txt"]') && document.querySelector('#diff').textContent`)
		for _, want := range []string{"added new.txt", "changed notes.txt", "-beta", "+gamma", "+fresh"} {
			if !strings.Contains(strings.Join(strings.Fields(diff), " "), want) && !strings.Contains(diff, want) {
				t.Fatalf("diff of step 2 lacks %q:\n%s", want, diff)
			}
		}
		b.shot("replay")
		b.do("select step 1", chromedp.Click(chromedp.CSS(`#timeline .step[data-step="1"]`)))
		waitTrue(b, "step 1 selected", `document.querySelector('#timeline .step.sel') && document.querySelector('#timeline .step.sel').dataset.step === '1' && document.querySelector('#diff [data-path="notes.txt"]')`)
		b.do("fork from step 1", chromedp.Click(chromedp.CSS("#fork")))
		forked := wait[string](b, "the forked session", fmt.Sprintf(`document.body.dataset.view === 'session' && document.querySelector('#session-id').textContent !== %s && document.querySelector('#session-id').textContent`, jsString(session)))
		if !strings.HasPrefix(forked, session+"-f1-") {
			t.Fatalf("forked session %q, want %s-f1-...", forked, session)
		}
		waitTrue(b, "its variables", `document.querySelector('#variables') && document.querySelector('#variables').textContent.includes('x')`)
		b.do("print its state", chromedp.SetValue(chromedp.CSS("#code"), "print(x, open('notes.txt').read().split(), __import__('os').path.exists('new.txt'))"), chromedp.Click(chromedp.CSS("#run")))
		out := wait[string](b, "the state printed", `document.querySelector('#exit') && document.querySelector('#out').textContent`)
		if strings.TrimSpace(out) != "41 ['alpha', 'beta'] False" {
			t.Fatalf("the forked session printed %q, want step 1's state", out)
		}
	})

	t.Run("delete a skill", func(t *testing.T) {
		b.t = t
		b.open(f.base + "/#/skills")
		b.view("skills")
		sig := wait[string](b, "the skill", `document.querySelector('[data-skill="greet"] h3') && document.querySelector('[data-skill="greet"] h3').textContent`)
		if !strings.Contains(sig, "greet(name: str) -> str") {
			t.Fatalf("skill heading %q", sig)
		}
		b.shot("skills")
		b.do("delete it", chromedp.Click(chromedp.CSS(`[data-skill="greet"] .delete-skill`)))
		waitTrue(b, "the skill gone", `document.body.dataset.view === 'skills' && !document.querySelector('[data-skill="greet"]')`)
		var list []any
		if code := f.do("GET", "/v1/skills", nil, &list); code != http.StatusOK || len(list) != 0 {
			t.Fatalf("skills after the delete: %d %v", code, list)
		}
	})

	// A page of another origin in the same browser can neither read the
	// API nor make it act (a no-cors POST is refused before it runs).
	t.Run("cross-origin page refused", func(t *testing.T) {
		b.t = t
		var before []any
		f.do("GET", "/v1/sessions", nil, &before)
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "<!doctype html><title>elsewhere</title>")
		}))
		defer evil.Close()
		b.open(evil.URL + "/")
		got := wait[string](b, "the cross-origin attempts", fmt.Sprintf(`(window.__r ||= (async () => {
			const out = [];
			try { const r = await fetch(%[1]s + '/v1/sessions'); out.push('read ' + r.status); } catch (e) { out.push('read blocked'); }
			try { await fetch(%[1]s + '/v1/sessions', {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: '{}'}); out.push('post sent'); } catch (e) { out.push('post blocked'); }
			try { await fetch(%[1]s + '/v1/execute', {method: 'POST', mode: 'no-cors', body: '{"code": "open(\'pwned\', \'w\')"}'}); out.push('exec sent'); } catch (e) { out.push('exec blocked'); }
			window.__done = out.join(', ');
		})(), window.__done)`, jsString(f.base)))
		t.Logf("from %s: %s", evil.URL, got)
		if !strings.HasPrefix(got, "read blocked") {
			t.Fatalf("a page of another origin read the API: %s", got)
		}
		var after []any
		f.do("GET", "/v1/sessions", nil, &after)
		if len(after) != len(before) {
			t.Fatalf("a cross-origin POST created a session: %d → %d sessions (%s)", len(before), len(after), got)
		}
		if _, err := os.Stat(filepath.Join(f.ws, "pwned")); err == nil {
			t.Fatal("a cross-origin POST ran code")
		}
	})

	t.Run("backends", func(t *testing.T) {
		b.t = t
		b.open(f.base + "/#/backends")
		b.view("backends")
		waitTrue(b, "hostpython listed", `document.querySelector('#plugins').textContent.includes('hostpython')`)
		b.shot("backends")
	})

	t.Run("bench chart", func(t *testing.T) {
		b.t = t
		// The shape of `mcpruntime bench --json`.
		file := filepath.Join(t.TempDir(), "bench.json")
		bench := `{"backend": "hostpython", "results": [
			{"name": "python3 (native) compute", "n": 5, "median_ms": 310.5, "p90_ms": 330.1},
			{"name": "hostpython compute", "n": 5, "median_ms": 402.7, "p90_ms": 451.0, "baseline": "python3 (native) compute", "ratio": 1.3},
			{"name": "hostpython exec print(1)", "n": 20, "median_ms": 2.4, "p90_ms": 3.9}]}`
		if err := os.WriteFile(file, []byte(bench), 0o644); err != nil {
			t.Fatal(err)
		}
		b.open(f.base + "/#/bench")
		b.view("bench")
		b.do("pick the file", chromedp.SetUploadFiles(chromedp.CSS("#bench-file"), []string{file}))
		b.view("bench-chart")
		if n := eval[int](b, `document.querySelectorAll('.bench-run[data-backend="hostpython"] rect.sbx').length`); n != 3 {
			t.Fatalf("%d bars, want 3", n)
		}
		b.shot("bench")
	})

	// Load times with the Performance API: from the navigation's start to
	// the view drawn with its data (the requests included).
	t.Run("500 sessions and 200 steps load in under 1s", func(t *testing.T) {
		b.t = t
		measure := func(url, view, count string, want int) float64 {
			b.open(url)
			b.view(view)
			if n := eval[int](b, count); n < want {
				t.Fatalf("%s: %d rows, want %d", view, n, want)
			}
			return eval[float64](b, fmt.Sprintf(`performance.getEntriesByName('rendered:%s')[0].startTime`, view))
		}
		sessions := measure(f.base+"/#/sessions", "sessions", `document.querySelectorAll('#recorded-sessions tr').length`, 500)
		b.shot("sessions")
		steps := measure(f.base+"/#/replay/big", "replay", `document.querySelectorAll('#timeline .step').length`, 200)
		b.shot("replay-200")
		t.Logf("load to drawn: sessions page (500 recorded sessions) %.0f ms, replay of 200 steps %.0f ms", sessions, steps)
		if sessions >= 1000 || steps >= 1000 {
			t.Fatalf("too slow: sessions %.0f ms, replay %.0f ms (limit 1000 ms)", sessions, steps)
		}
	})
}

// Off loopback the console asks for the token; the login sets a cookie
// page scripts cannot read, and the API answers with it.
func TestConsoleLoginInBrowser(t *testing.T) {
	b := newBrowser(t)
	addr := freeAddr(t)
	token := "console-test-token-0123456789"
	dir := project(t, fmt.Sprintf("server {\n  listen = %q\n  token = %q\n}\n", addr, token))
	srv := startRunsServerWithToken(t, dir, addr)
	b.open(srv + "/#/sessions")
	b.view("login")
	b.shot("login")
	b.do("wrong token", chromedp.SetValue(chromedp.CSS("#token"), "not-the-token-at-all"), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	waitTrue(b, "the refusal", `!document.getElementById('toast').hidden && document.getElementById('toast').textContent.includes('wrong token')`)
	b.do("log in", chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	b.view("sessions")
	if c := eval[string](b, `document.cookie`); c != "" {
		t.Fatalf("page scripts see the cookie: %q", c)
	}
}

// startRunsServerWithToken starts `serve` with a token and waits for it
// (its health check needs the token).
func startRunsServerWithToken(t *testing.T, dir, addr string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mcpruntime"), "serve")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	waitFor(t, "the server up", func() bool {
		resp, err := http.Get(base + "/v1/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}
