//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// counterCode increments a counter that lives only in the session's
// variables and prints it: a session that lost its state prints 1 again.
const counterCode = "n = globals().get('n', 0) + 1\nprint(n)"

type via int

const (
	viaHTTP via = iota
	viaDaemon
)

// session is one session under load and what its executions showed.
type session struct {
	id, backend string
	via         via

	mu sync.Mutex
	// last is the counter the last acknowledged execution printed;
	// uncertain: an execution since then failed, so it may have run;
	// lostTold: a result since then said state_lost.
	last      int
	uncertain bool
	lostTold  bool
	// acked counts results received; their printed counters, in order.
	acked, errors, lost, recovered, replayErrors int
	printed                                      []int
	silent                                       []string
}

// outcome is what one execution returned.
type outcome struct {
	stdout      string
	stateLost   bool
	replayError string
	err         error
}

func (s *session) loop(h *harness, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		var o outcome
		if s.via == viaHTTP {
			o = h.execHTTP(s.id, s.backend)
		} else {
			o = h.execCLI(s.id, s.backend)
		}
		s.record(o)
		if o.err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// record checks an outcome against the session's counter.
func (s *session) record(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.stateLost {
		// Told, even on a result without the counter (a kernel that died
		// under the execution): the next counter may start again.
		s.lost++
		s.lostTold = true
	}
	if o.err != nil {
		s.errors++
		s.uncertain = true
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(o.stdout))
	if err != nil {
		s.errors++
		s.uncertain = true
		return
	}
	s.acked++
	s.printed = append(s.printed, n)
	if o.replayError != "" {
		s.replayErrors++
	}
	switch {
	case s.lostTold && n == 1:
	case n == s.last+1:
	case s.uncertain && n == s.last+2:
		// The failed execution ran after all, and the state survived.
	default:
		s.silent = append(s.silent, fmt.Sprintf("%s (%s): counter went %d -> %d without state_lost", s.id, s.backend, s.last, n))
	}
	if s.uncertain && !s.lostTold && n > 1 {
		s.recovered++
	}
	s.last, s.uncertain, s.lostTold = n, false, false
}

// execHTTP runs the counter through `mcpruntime serve`.
func (h *harness) execHTTP(id, backend string) outcome {
	body, _ := json.Marshal(map[string]any{"code": counterCode, "backend": backend, "create": true})
	req, err := http.NewRequest(http.MethodPost, "http://"+h.address()+"/v1/sessions/"+id+"/execute", bytes.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	c := http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return outcome{err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	var o outcome
	var stdout strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Type   string `json:"type"`
			Data   string `json:"data"`
			Error  string `json:"error"`
			Result *struct {
				StateLost   bool   `json:"state_lost"`
				ReplayError string `json:"replay_error"`
			} `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return outcome{err: fmt.Errorf("bad event %q: %w", sc.Text(), err)}
		}
		switch ev.Type {
		case "stdout":
			stdout.WriteString(ev.Data)
		case "error":
			return outcome{err: fmt.Errorf("execute: %s", ev.Error)}
		case "result":
			if ev.Result == nil {
				return outcome{err: fmt.Errorf("result event without a result")}
			}
			o.stateLost, o.replayError = ev.Result.StateLost, ev.Result.ReplayError
			o.stdout = stdout.String()
			return o
		}
	}
	if err := sc.Err(); err != nil {
		return outcome{err: err}
	}
	return outcome{err: fmt.Errorf("stream ended without a result")}
}

// execCLI runs the counter in the workspace's session daemon.
func (h *harness) execCLI(id, backend string) outcome {
	cmd := h.command("exec", "--session", id, "--backend", backend, "--json", "-c", counterCode)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return outcome{err: err}
	}
	// --json prints the result whatever the exit status (the code's own,
	// or 125 with an error when mcpruntime failed).
	var res struct {
		Stdout      string  `json:"stdout"`
		Error       *string `json:"error"`
		StateLost   bool    `json:"state_lost"`
		ReplayError string  `json:"replay_error"`
	}
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		return outcome{err: fmt.Errorf("exec --json (%v): %w: %q %s", err, jerr, out.String(), strings.TrimSpace(errb.String()))}
	}
	o := outcome{stdout: res.Stdout, stateLost: res.StateLost, replayError: res.ReplayError}
	if err != nil {
		msg := ""
		if res.Error != nil {
			msg = *res.Error
		}
		o.err = fmt.Errorf("exit %d: %s", ee.ExitCode(), msg)
	}
	return o
}

// get requests path from the server.
func (h *harness) get(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+h.address()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp, nil
}
