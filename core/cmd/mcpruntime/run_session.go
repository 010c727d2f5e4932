package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/core/llm"
	"github.com/mcpruntime/mcpruntime/core/replay"
	"github.com/mcpruntime/mcpruntime/core/runstore"
	"github.com/mcpruntime/mcpruntime/core/server"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// daemonSandbox is a session the workspace daemon holds (`exec --session`'s
// sessions, and those replay resume or fork creates): a run attached to it
// sees and leaves the state every other client of the session sees.
type daemonSandbox struct {
	c           *server.Client
	id, backend string
	// task labels the run's steps in the session's replay log.
	task string
}

func (d daemonSandbox) ID() string      { return d.id }
func (d daemonSandbox) Backend() string { return d.backend }

func (d daemonSandbox) Exec(ctx context.Context, code string, timeout time.Duration, emit func(sdk.Event)) (*sdk.ExecResult, error) {
	return d.c.Exec(ctx, d.id, server.ExecRequest{Code: code, Backend: d.backend, TimeoutMs: timeout.Milliseconds(), Create: true, Task: d.task}, emit)
}

// attachDaemon returns session id of the daemon c as a sandbox, with the
// backend it runs on (backend, or the default, when it does not exist yet).
func attachDaemon(ctx context.Context, c *server.Client, id, backend, def string) (daemonSandbox, error) {
	all, err := c.Sessions(ctx)
	if err != nil {
		return daemonSandbox{}, fmt.Errorf("list the daemon's sessions: %w", err)
	}
	for _, s := range all {
		if s.ID == id {
			if backend != "" && backend != s.Backend {
				return daemonSandbox{}, fmt.Errorf("session %s runs on %s, not %s", id, s.Backend, backend)
			}
			return daemonSandbox{c: c, id: id, backend: s.Backend}, nil
		}
	}
	if backend == "" {
		backend = def
	}
	return daemonSandbox{c: c, id: id, backend: backend}, nil
}

// maxOriginDepth bounds the chain of resumed-from sessions followed.
const maxOriginDepth = 32

// sessionRuns returns the runs recorded in session id, oldest first, each
// with its turns, preceded by those of the session it was resumed or
// forked from (up to the step it started from). With upTo > 0 the runs
// stop at replay step upTo of id: a run's steps are matched to the
// session's replay log by their code, in order, and a run cut there loses
// its later turns and its answer.
func sessionRuns(ctx context.Context, st *runstore.Store, workspace, id string, upTo, depth int) ([]runstore.Run, error) {
	entries, _, err := replay.Show(workspace, id, -1)
	if err != nil && !errors.Is(err, replay.ErrNoSession) {
		return nil, err
	}
	var out []runstore.Run
	if len(entries) > 0 && entries[0].Step == 0 && entries[0].ResumedFrom != nil && depth < maxOriginDepth {
		o := entries[0].ResumedFrom
		parent, err := sessionRuns(ctx, st, workspace, o.Session, o.Step, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, parent...)
	}
	all, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	next := 0
	for _, r := range all {
		if r.Session != id {
			continue
		}
		full, err := st.Get(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		var turns []agent.Turn
		cut := false
		for _, t := range full.Turns {
			kept := agent.Turn{N: t.N, Reply: t.Reply}
			for _, s := range t.Steps {
				if n := matchStep(entries, &next, s.Code); upTo > 0 && n > upTo {
					cut = true
					break
				}
				kept.Steps = append(kept.Steps, s)
			}
			if cut && len(kept.Steps) == 0 {
				break
			}
			turns = append(turns, kept)
			if cut {
				break
			}
		}
		full.Turns = turns
		if cut {
			full.Result = nil
		}
		if len(turns) > 0 || !cut {
			out = append(out, *full)
		}
		if cut {
			break
		}
	}
	return out, nil
}

// matchStep returns the replay step, at or after entries[*next], that ran
// code (and moves next past it), or 0 when none did (not recorded).
func matchStep(entries []replay.Entry, next *int, code string) int {
	for i := *next; i < len(entries); i++ {
		if entries[i].Step > 0 && entries[i].Code == code {
			*next = i + 1
			return entries[i].Step
		}
	}
	return 0
}

// transcript is the conversation of runs, as Options.Prior.
func transcript(runs []runstore.Run, observationLimit int) []llm.Message {
	var out []llm.Message
	for _, r := range runs {
		var res struct {
			Answer string `json:"answer"`
		}
		if len(r.Result) > 0 {
			// A result that does not decode only loses the answer.
			_ = json.Unmarshal(r.Result, &res)
		}
		out = append(out, agent.Transcript(r.Task, r.Turns, res.Answer, observationLimit)...)
	}
	return out
}
