package runstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
)

// Create stores run r as running, owned by this store instance.
func (s *Store) Create(ctx context.Context, r Run) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO runs (id, task, backend, session, status, owner, started) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Task, r.Backend, r.Session, string(Running), s.owner.id, r.Started.UnixNano())
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// AppendReply records turn n's reply of run id (before its blocks run).
func (s *Store) AppendReply(ctx context.Context, id string, n int, reply string) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO turns (run_id, turn, reply) VALUES (?, ?, ?)`, id, n, reply)
	if err != nil {
		return fmt.Errorf("run %s: record reply %d: %w", id, n, err)
	}
	return nil
}

// AppendStep records a completed step of turn n of run id.
func (s *Store) AppendStep(ctx context.Context, id string, n int, st *agent.Step) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("run %s: encode step %d: %w", id, st.N, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT OR REPLACE INTO steps (run_id, step, turn, data) VALUES (?, ?, ?, ?)`, id, st.N, n, data)
	if err != nil {
		return fmt.Errorf("run %s: record step %d: %w", id, st.N, err)
	}
	return nil
}

// SetStatus records a change of run id's status. A final status stamps
// the finish time.
func (s *Store) SetStatus(ctx context.Context, id string, u Update) error {
	var finished any
	if u.Status != Running {
		finished = time.Now().UTC().UnixNano()
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE runs SET status = ?, error = ?, finished = ?, result = COALESCE(?, result) WHERE id = ?`,
		string(u.Status), u.Error, finished, nullBlob(u.Result), id)
	if err != nil {
		return fmt.Errorf("run %s: set status %s: %w", id, u.Status, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	return nil
}

func nullBlob(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return []byte(b)
}

const runColumns = `id, task, backend, session, status, owner, started, finished, error`

func scanRun(sc interface{ Scan(...any) error }, extra ...any) (Run, error) {
	var r Run
	var status string
	var started int64
	var finished sql.NullInt64
	err := sc.Scan(append([]any{&r.ID, &r.Task, &r.Backend, &r.Session, &status, &r.Owner, &started, &finished, &r.Error}, extra...)...)
	if err != nil {
		return r, err
	}
	r.Status, r.Started = Status(status), time.Unix(0, started).UTC()
	if finished.Valid {
		t := time.Unix(0, finished.Int64).UTC()
		r.Finished = &t
	}
	return r, nil
}

// List returns every run, oldest first, without results and turns.
func (s *Store) List(ctx context.Context) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs ORDER BY started, id`)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	out := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// Get returns run id with its result and turns (ErrNotFound if none).
func (s *Store) Get(ctx context.Context, id string) (*Run, error) {
	var r *Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = getRun(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// read runs f in a transaction, so that it sees one state of the store.
func (s *Store) read(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("run store: %w", err)
	}
	defer tx.Rollback()
	return f(tx)
}

func getRun(ctx context.Context, tx *sql.Tx, id string) (*Run, error) {
	var result []byte
	r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+`, result FROM runs WHERE id = ?`, id), &result)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	if len(result) > 0 {
		r.Result = json.RawMessage(result)
	}
	if r.Turns, err = turns(ctx, tx, id); err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	return &r, nil
}

// turns loads a run's replies and attaches each step to its turn.
func turns(ctx context.Context, tx *sql.Tx, id string) ([]agent.Turn, error) {
	rows, err := tx.QueryContext(ctx, `SELECT turn, reply FROM turns WHERE run_id = ? ORDER BY turn`, id)
	if err != nil {
		return nil, fmt.Errorf("turns: %w", err)
	}
	var out []agent.Turn
	at := map[int]int{}
	for rows.Next() {
		var t agent.Turn
		if err := rows.Scan(&t.N, &t.Reply); err != nil {
			rows.Close()
			return nil, fmt.Errorf("turns: %w", err)
		}
		at[t.N] = len(out)
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("turns: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT turn, data FROM steps WHERE run_id = ? ORDER BY step`, id)
	if err != nil {
		return nil, fmt.Errorf("steps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var data []byte
		if err := rows.Scan(&n, &data); err != nil {
			return nil, fmt.Errorf("steps: %w", err)
		}
		st := &agent.Step{}
		if err := json.Unmarshal(data, st); err != nil {
			return nil, fmt.Errorf("step of turn %d: %w", n, err)
		}
		i, ok := at[n]
		if !ok {
			return nil, fmt.Errorf("step %d belongs to turn %d, which has no reply", st.N, n)
		}
		out[i].Steps = append(out[i].Steps, st)
	}
	return out, rows.Err()
}

// Resume makes run id running again under this store instance and returns
// it with its turns: the caller continues it. Only an interrupted, failed
// or cancelled run can be resumed (ErrNotResumable otherwise); a run whose
// process died is interrupted first.
func (s *Store) Resume(ctx context.Context, id string) (*Run, error) {
	if err := s.Recover(ctx); err != nil {
		return nil, err
	}
	var r *Run
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if r, err = getRun(ctx, tx, id); err != nil {
			return err
		}
		if !r.Status.Resumable() {
			return fmt.Errorf("run %s is %s: %w", id, r.Status, ErrNotResumable)
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET status = ?, owner = ?, finished = NULL, error = '' WHERE id = ?`,
			string(Running), s.owner.id, id)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotResumable) {
			return nil, err
		}
		return nil, fmt.Errorf("resume run %s: %w", id, err)
	}
	r.Status, r.Owner, r.Finished, r.Error = Running, s.owner.id, nil, ""
	return r, nil
}

// Recover marks interrupted the running runs whose process died, and
// clears the marks that dead processes left. Running runs of live
// processes (this one, or another server or daemon sharing the state
// directory) are left alone.
func (s *Store) Recover(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT owner FROM runs WHERE status = ?`, string(Running))
	if err != nil {
		return fmt.Errorf("recover runs: %w", err)
	}
	var owners []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return fmt.Errorf("recover runs: %w", err)
		}
		owners = append(owners, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recover runs: %w", err)
	}
	others, err := s.owner.others()
	if err != nil {
		return err
	}
	for _, o := range append(owners, others...) {
		alive, err := s.owner.alive(o)
		if err != nil {
			return err
		}
		if alive {
			continue
		}
		_, err = s.db.ExecContext(ctx, `UPDATE runs SET status = ?, error = ?, finished = ? WHERE owner = ? AND status = ?`,
			string(Interrupted), "the process running it stopped before it finished", time.Now().UTC().UnixNano(), o, string(Running))
		if err != nil {
			return fmt.Errorf("recover runs of %s: %w", o, err)
		}
	}
	return nil
}
